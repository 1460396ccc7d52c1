"""player_node (node/player_node.py): the tts/audio stream of a TTS node on another computer, played here.
The stream is published by a second ROS context over real DDS, the sound recorded from a private
PulseAudio null sink (bounds as in test_playback_player.py: samples exact; playback/speaking false never
before the recorded end of the sound). No skip: without the sound server these tests fail."""

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from audio_common_msgs.msg import AudioInfo  # noqa: E402
from qwen3_tts_ros.msg import AudioChunk, UtteranceLatency  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402

from qwen3_tts_ros.node.playback import PlaybackError  # noqa: E402
from qwen3_tts_ros.node.player_node import PlayerNode  # noqa: E402
from qwen3_tts_ros.testing.sound_server import MonitorRecorder  # noqa: E402
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S  # noqa: E402

NS = "/player_node_test"
RATE = 24000
LATENCY_S = 0.2  # as test_playback_node.py: the machine is shared with the rest of a test run
TIME_BOUND_S = LATENCY_S + 2 * MonitorRecorder.LATENCY_MS / 1e3


def test_playback_player_node_plays_a_remote_stream_and_silences_an_interrupted_one(
    sound_server, monkeypatch
):
    for key, value in sound_server.env.items():
        monkeypatch.setenv(key, value)
    player_ctx, tts_ctx = rclpy.Context(), rclpy.Context()
    rclpy.init(context=player_ctx)
    rclpy.init(context=tts_ctx)
    with pytest.raises(PlaybackError, match="'no-such-speaker'.*'pulse'"):
        PlayerNode(
            context=player_ctx,
            namespace=NS,
            parameter_overrides=[Parameter("device", value="no-such-speaker")],
        )
    params = [Parameter("device", value="pulse"), Parameter("latency_s", value=LATENCY_S)]
    player = PlayerNode(context=player_ctx, namespace=NS, parameter_overrides=params)
    tts = rclpy.create_node("fake_tts", context=tts_ctx, namespace=NS)
    cond = threading.Condition()
    speaking: list[tuple[bool, float]] = []

    def on_speaking(msg):
        with cond:
            speaking.append((msg.data, time.monotonic()))
            cond.notify_all()

    latched = QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    tts.create_subscription(Bool, "playback/speaking", on_speaking, latched)
    audio_pub = tts.create_publisher(
        AudioChunk, "tts/audio", QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    )
    latency_pub = tts.create_publisher(UtteranceLatency, "tts/latency", 100)
    executors = [SingleThreadedExecutor(context=c) for c in (player_ctx, tts_ctx)]
    executors[0].add_node(player)
    executors[1].add_node(tts)
    threads = [threading.Thread(target=e.spin, daemon=True) for e in executors]
    for t in threads:
        t.start()
    info = AudioInfo(
        channels=1, sample_rate=RATE, sample_format="S16LE", bitrate=RATE * 16, coding_format="wave"
    )
    rng = np.random.default_rng(5)

    def send(utterance_id, x):
        for seq, k in enumerate(range(0, len(x), 1920)):
            msg = AudioChunk(utterance_id=utterance_id, sequence=seq, is_final=k + 1920 >= len(x), info=info)
            msg.audio.data = x[k : k + 1920].tobytes()
            audio_pub.publish(msg)

    def wait_speaking(values):
        with cond:
            assert cond.wait_for(lambda: [v for v, _ in speaking] == values, EVENT_TIMEOUT_S), speaking

    recorder = sound_server.recorder()
    try:
        wait_speaking([False])
        while audio_pub.get_subscription_count() < 1 or latency_pub.get_subscription_count() < 1:
            threading.Event().wait(0.02)
        first = (rng.integers(1, 8000, RATE // 2) * rng.choice([-1, 1], RATE // 2)).astype("<i2")
        send(0, first)
        wait_speaking([False, True, False])
        ended_at = speaking[-1][1]
        recorder.wait_until(ended_at + TIME_BOUND_S)
        rec = recorder.samples()
        start = int(np.flatnonzero(rec)[0])
        assert np.array_equal(rec[start : start + len(first)], first)
        assert not rec[start + len(first) :].any()
        assert ended_at >= recorder.time_of(start + len(first)) - TIME_BOUND_S
        # A long utterance whose record says it was interrupted (stop, interrupt, cancel): silenced now.
        long = (rng.integers(1, 8000, 5 * RATE) * rng.choice([-1, 1], 5 * RATE)).astype("<i2")
        send(1, long)
        wait_speaking([False, True, False, True])
        recorder.wait_until(speaking[-1][1] + 0.3)
        stopped_at = time.monotonic()
        latency_pub.publish(UtteranceLatency(utterance_id=1, interrupted=True))
        wait_speaking([False, True, False, True, False])
        recorder.wait_until(speaking[-1][1] + 0.5)
        rec = recorder.samples()
        last = int(np.flatnonzero(rec)[-1]) + 1
        assert recorder.time_of(last) <= speaking[-1][1] + TIME_BOUND_S  # silent one device period after
        assert recorder.time_of(last) >= stopped_at - TIME_BOUND_S  # and it did sound until the stop
    finally:
        recorder.stop()
        for e in executors:
            e.shutdown()
        player.close()
        player.destroy_node()
        tts.destroy_node()
        for c in (player_ctx, tts_ctx):
            rclpy.shutdown(context=c)
