"""The optional ros-drivers output: audio_common_msgs/AudioData on output.audio_data_topic carries exactly the
PCM of the AudioChunk stream, in the format tts/audio_info announces (here S16LE resampled to 16 kHz, what an
`audio_play` started with format:=wave sample_rate:=16000 expects).

The node runs in this process on a MultiThreadedExecutor like main(); its topics go over real DDS to a
second node of another context.
"""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from audio_common_msgs.msg import AudioData, AudioInfo  # noqa: E402
from qwen3_tts_ros.msg import AudioChunk  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from qwen3_tts_ros.testing.in_process_node import in_process_node  # noqa: E402

NS = "/audio_data_test"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("audio_data_tiny"), "custom_voice", seed=4)


def test_audio_data_topic_mirrors_the_chunk_stream_resampled(checkpoint):
    values = {"model": str(checkpoint), "device": "cpu", "warmup.text": "", "diagnostics.period_s": 0.0,
              "output.sample_rate": 16000, "output.audio_data_topic": "audio", "sampling.max_new_tokens": 12,
              "sampling.do_sample": False, "sampling.subtalker_dosample": False}
    with in_process_node(NS, values, "audio_data_client") as (_, client):
        chunks, data, infos = [], [], []
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        client.create_subscription(AudioChunk, f"{NS}/tts/audio", chunks.append, reliable)
        client.create_subscription(AudioData, f"{NS}/audio", data.append, reliable)
        client.create_subscription(AudioInfo, f"{NS}/tts/audio_info", infos.append, latched)
        text_pub = client.create_publisher(String, f"{NS}/tts/text", reliable)
        deadline = time.monotonic() + 30
        while text_pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        text_pub.publish(String(data="Hello from the audio data test."))
        while not (chunks and chunks[-1].is_final and infos) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # AudioData goes out right after each chunk; let the last one arrive
        assert chunks and chunks[-1].is_final
        info = infos[-1]
        assert (info.sample_rate, info.sample_format, info.channels, info.coding_format) == (
            16000, "S16LE", 1, "wave")
        assert info.bitrate == 16000 * 16
        chunk_bytes = b"".join(bytes(c.audio.data) for c in chunks)
        frames = sum(c.frame_count for c in chunks)
        assert len(chunk_bytes) == frames * 1280 * 2  # 1920 samples at 24 kHz -> 1280 at 16 kHz, whole stream
        assert b"".join(bytes(d.data) for d in data) == chunk_bytes
        assert len(data) == sum(1 for c in chunks if len(c.audio.data))  # no empty AudioData messages
        assert np.frombuffer(chunk_bytes, dtype="<i2").any()
