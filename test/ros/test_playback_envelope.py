"""tts/envelope without playback (playback.envelope_rate_hz > 0, playback.enabled false): the loudness of the
published audio, one RMS value per 1/rate seconds of it, on the audio timeline (what a robot face's mouth
follows when another computer plays the sound). With playback on, the Player's own envelope of what it
plays is checked in test_playback_player.py.

The node runs in this process on a MultiThreadedExecutor like main(); its topics go over real DDS to a
second node of another context. Values: the RMS of each 480-sample window of the published int16 audio,
computed here in float64 as the node does; the message is a float32, so they agree to float32 rounding
(relative 2**-23, bound 1e-6 relative)."""

import threading

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from qwen3_tts_ros.msg import AudioChunk  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Float32, String  # noqa: E402

from qwen3_tts_ros.testing.in_process_node import in_process_node  # noqa: E402
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S  # noqa: E402

NS = "/envelope_test"
WINDOW = 24000 // 50


def test_playback_off_envelope_follows_the_published_audio(tiny_custom_voice_checkpoint):
    values = {"model": str(tiny_custom_voice_checkpoint), "device": "cpu", "warmup.text": "",
              "diagnostics.period_s": 0.0, "sampling.max_new_tokens": 10, "sampling.do_sample": False,
              "sampling.subtalker_dosample": False, "playback.envelope_rate_hz": 50.0}  # fmt: skip
    cond = threading.Condition()
    chunks, levels = [], []

    def record(into):
        def on(msg):
            with cond:
                into.append(msg)
                cond.notify_all()

        return on

    with in_process_node(NS, values, "envelope_client") as (_, client):
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        client.create_subscription(AudioChunk, f"{NS}/tts/audio", record(chunks), reliable)
        client.create_subscription(Float32, f"{NS}/tts/envelope", record(levels), reliable)
        text_pub = client.create_publisher(String, f"{NS}/tts/text", reliable)
        while text_pub.get_subscription_count() < 1 or client.count_publishers(f"{NS}/tts/envelope") < 1:
            threading.Event().wait(0.02)
        text_pub.publish(String(data="Hello from the envelope test."))
        with cond:
            assert cond.wait_for(lambda: chunks and chunks[-1].is_final, EVENT_TIMEOUT_S)
        audio = np.concatenate([np.frombuffer(bytes(c.audio.data), "<i2") for c in chunks]) / 32768.0
        whole = len(audio) // WINDOW
        expected = np.sqrt(np.mean(audio[: whole * WINDOW].reshape(whole, WINDOW) ** 2, axis=1))
        with cond:  # timed as if played from the first chunk on: the last comes about its duration later
            assert cond.wait_for(lambda: len(levels) >= whole, EVENT_TIMEOUT_S), (len(levels), whole)
        got = np.array([m.data for m in levels[:whole]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert expected.max() > 0
