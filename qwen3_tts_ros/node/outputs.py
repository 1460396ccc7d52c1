"""What the node publishes: tts/audio (AudioChunk), the optional AudioData topic, tts/latency, tts/speaking,
tts/audio_info and /diagnostics. `NodeOutputs` is the synthesis worker's `Sink`: the worker thread publishes
chunks through it directly (rclpy publishers are thread-safe), so time to first audio has no executor
hand-off. Publishers exist from configure to cleanup, except /diagnostics, which exists in every state (a
failed configure must reach monitoring); publishing after cleanup is a no-op (an audio chunk raises: the
worker logs it)."""

from __future__ import annotations

import array
import threading
from typing import Any

from audio_common_msgs.msg import AudioData, AudioInfo
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from qwen3_tts_ros.engine.types import SAMPLE_RATE
from qwen3_tts_ros.msg import AudioChunk, UtteranceLatency
from qwen3_tts_ros.node.pcm import PcmEncoder

LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


class NodeOutputs:
    """The publishers of `node`. `lock` is held while publishing (from a callback or the worker) and while
    they are destroyed: a diagnostics tick racing a cleanup published on a destroyed publisher and that ended
    the node. The node holds it too around configure's `create`, so that a process exit (which sets the
    node's closing flag under it) never leaves publishers made after its cleanup."""

    def __init__(self, node):
        self._node = node
        self.lock = threading.Lock()
        self._made: list = []  # (destroy function, publisher)
        self._audio = self._audio_data = self._latency = None
        self._speaking = self._info = None
        self._diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._audio_info: AudioInfo | None = None
        self._frame_id = ""

    def create(self, v: dict[str, Any]) -> None:
        """Make the publishers from the parameter values `v` (configure; call with `lock` held) and latch
        the stream format and "not speaking"."""
        node = self._node
        audio_qos = QoSProfile(
            depth=v["output.audio_depth"],
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        lifecycle_pub, destroy_lifecycle = node.create_lifecycle_publisher, node.destroy_lifecycle_publisher
        self._audio = self._keep(destroy_lifecycle, lifecycle_pub(AudioChunk, "tts/audio", audio_qos))
        self._latency = self._keep(destroy_lifecycle, lifecycle_pub(UtteranceLatency, "tts/latency", 10))
        self._audio_data = None
        if v["output.audio_data_topic"]:
            self._audio_data = self._keep(
                destroy_lifecycle, lifecycle_pub(AudioData, v["output.audio_data_topic"], audio_qos)
            )
        # Plain publishers: "not speaking" and the stream format hold in every state.
        plain_pub, destroy_plain = node.create_publisher, node.destroy_publisher
        self._speaking = self._keep(destroy_plain, plain_pub(Bool, "tts/speaking", LATCHED))
        self._info = self._keep(destroy_plain, plain_pub(AudioInfo, "tts/audio_info", LATCHED))
        encoder = PcmEncoder(v["output.format"], SAMPLE_RATE, v["output.sample_rate"])
        self._audio_info = AudioInfo(
            channels=1,
            sample_rate=v["output.sample_rate"],
            sample_format=encoder.sample_format,
            bitrate=encoder.bitrate,
            coding_format="wave",
        )
        self._frame_id = v["output.frame_id"]
        self._info.publish(self._audio_info)
        self._speaking.publish(Bool(data=False))

    def _keep(self, destroy, publisher):
        self._made.append((destroy, publisher))
        return publisher

    def destroy(self) -> None:
        with self.lock:
            self._audio = self._audio_data = self._latency = None
            self._speaking = self._info = None
            while self._made:
                destroy, publisher = self._made.pop()
                destroy(publisher)

    # ------------------------------------------------------------------ Sink (called on the worker thread)
    def chunk(
        self,
        utterance_id: int,
        sequence: int,
        frame_start: int,
        frame_count: int,
        is_final: bool,
        data: bytes,
    ) -> None:
        msg = AudioChunk(
            utterance_id=utterance_id,
            sequence=sequence,
            is_final=is_final,
            frame_start=frame_start,
            frame_count=frame_count,
            info=self._audio_info,
        )
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        msg.audio.data = array.array("B", data)
        with self.lock:
            if self._audio is None:
                raise RuntimeError("audio chunk published after cleanup")  # the worker logs it
            self._audio.publish(msg)
            if self._audio_data is not None and data:
                self._audio_data.publish(msg.audio)

    def speaking(self, value: bool) -> None:
        with self.lock:
            if self._speaking is not None:
                self._speaking.publish(Bool(data=value))

    def latency(self, record: dict[str, Any]) -> None:
        msg = UtteranceLatency(**record)
        msg.header.stamp = self._node.get_clock().now().to_msg()
        with self.lock:
            if self._latency is not None:
                self._latency.publish(msg)

    # ------------------------------------------------------------------ executor
    def diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self._diag.publish(msg)
