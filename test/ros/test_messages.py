"""The generated messages round-trip through a real rclpy publisher and subscriber over DDS."""
import array
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from audio_common_msgs.msg import AudioInfo  # noqa: E402
from qwen3_tts_ros.msg import AudioChunk, TextChunk, UtteranceLatency  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT  # noqa: E402


@pytest.fixture(scope="module")
def ros_node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_messages", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield node, executor
    node.destroy_node()
    rclpy.shutdown(context=context)


def _round_trip(ros_node, msg_type, topic, msg):
    node, executor = ros_node
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    sub = node.create_subscription(msg_type, topic, received.append, qos)
    pub = node.create_publisher(msg_type, topic, qos)
    deadline = time.monotonic() + TIMEOUT
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    pub.publish(msg)
    while not received and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    node.destroy_subscription(sub)
    node.destroy_publisher(pub)
    assert received, f"nothing received on {topic}"
    return received[0]


def test_audio_chunk_round_trip(ros_node):
    pcm = (np.arange(1920 * 2, dtype=np.int16) - 2000).astype("<i2")
    msg = AudioChunk()
    msg.header.frame_id = "speaker"
    msg.utterance_id = 7
    msg.sequence = 3
    msg.is_final = True
    msg.frame_start = 12
    msg.frame_count = 2
    msg.info = AudioInfo(channels=1, sample_rate=24000, sample_format="S16LE", bitrate=24000 * 16,
                         coding_format="wave")
    msg.audio.data = array.array("B", pcm.tobytes())
    got = _round_trip(ros_node, AudioChunk, "/test/audio_chunk", msg)
    got_ids = (got.utterance_id, got.sequence, got.is_final, got.frame_start, got.frame_count)
    assert got_ids == (7, 3, True, 12, 2)
    assert got.header.frame_id == "speaker"
    assert (got.info.sample_rate, got.info.sample_format, got.info.channels) == (24000, "S16LE", 1)
    back = np.frombuffer(bytes(got.audio.data), dtype="<i2")
    np.testing.assert_array_equal(back, pcm)


def test_utterance_latency_round_trip(ros_node):
    msg = UtteranceLatency(utterance_id=2, text_length=42, queue_wait_ms=1.5, prefill_ms=8.25,
                           time_to_first_audio_ms=31.0, end_to_end_first_audio_ms=33.5, frames=25,
                           audio_seconds=2.0, synthesis_seconds=0.5, real_time_factor=4.0,
                           frame_ms_mean=3.5, frame_ms_p50=3.25, frame_ms_p95=4.75, frame_ms_max=6.0,
                           decode_ms_total=12.0, interrupted=True, error="stopped",
                           first_text_to_first_audio_ms=21.5, text_stalls=3, text_wait_ms=140.25)
    got = _round_trip(ros_node, UtteranceLatency, "/test/latency", msg)
    for field in ("utterance_id", "text_length", "frames", "interrupted", "error", "text_stalls"):
        assert getattr(got, field) == getattr(msg, field)
    for field in ("queue_wait_ms", "prefill_ms", "time_to_first_audio_ms", "real_time_factor",
                  "frame_ms_p95", "first_text_to_first_audio_ms", "text_wait_ms"):
        assert getattr(got, field) == pytest.approx(getattr(msg, field))


def test_text_chunk_round_trip(ros_node):
    # sequence near the top of uint32, text beyond ASCII
    fields = dict(stream_id="llm-7f3a", sequence=4_000_000_000, text=" wörld 👍🏽", final=True)
    got = _round_trip(ros_node, TextChunk, "/test/text_chunk", TextChunk(**fields))
    assert {name: getattr(got, name) for name in fields} == fields
