"""`player_node`: plays the tts/audio stream of a qwen3_tts node (possibly on another computer) on a local
sound device, with the same Player as the node's own playback (playback.py): jitter buffer, underruns,
device-clock state.

Subscribes (relative names, so a namespace moves them with the TTS node's): tts/audio (AudioChunk; each
carries its AudioInfo, so the stream opens at the format and rate it announces) and tts/latency (an
utterance that was stopped, interrupted or cancelled is silenced at once: its record says interrupted).
Publishes playback/speaking (std_msgs/Bool, latched: true from the first sample played to the last one) and,
with envelope_rate_hz > 0, playback/envelope (std_msgs/Float32). Service ~/stop silences everything now.
Parameters: device, start_buffer_s, latency_s, envelope_rate_hz (as the node's playback.*). A device that
cannot be opened: one error line naming it and listing the devices, exit status 1.

    ros2 run qwen3_tts_ros player_node --ros-args -p device:=pulse
"""

from __future__ import annotations

import sys
import threading

import rclpy
import rclpy.executors
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, Float32
from std_srvs.srv import Trigger

from qwen3_tts_ros.msg import AudioChunk, UtteranceLatency
from qwen3_tts_ros.node.outputs import LATCHED
from qwen3_tts_ros.node.playback import PlaybackError, Player, PlayerConfig, resolve_device

FORMATS = {"S16LE": "int16", "F32LE": "float32"}
AUDIO_QOS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)


class PlayerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("qwen3_tts_player", **kwargs)
        self._device = self.declare_parameter("device", "default").value
        self._start_buffer_s = self.declare_parameter("start_buffer_s", 0.1).value
        self._latency_s = self.declare_parameter("latency_s", 0.05).value
        self._envelope_hz = self.declare_parameter("envelope_rate_hz", 0.0).value
        resolve_device(self._device)  # PlaybackError now, not at the first chunk
        self._lock = threading.Lock()
        self._player: Player | None = None
        self._format: tuple[str, int] | None = None
        self._pending: set[int] = set()  # written, sound not ended
        self._speaking = False
        self._speaking_pub = self.create_publisher(Bool, "playback/speaking", LATCHED)
        self._speaking_pub.publish(Bool(data=False))
        self._envelope_pub = (
            self.create_publisher(Float32, "playback/envelope", 10) if self._envelope_hz > 0 else None
        )
        self.create_subscription(AudioChunk, "tts/audio", self._on_chunk, AUDIO_QOS)
        self.create_subscription(UtteranceLatency, "tts/latency", self._on_latency, 100)
        self.create_service(Trigger, "~/stop", self._on_stop)

    def _on_chunk(self, msg: AudioChunk) -> None:
        fmt = (FORMATS.get(msg.info.sample_format, ""), int(msg.info.sample_rate))
        if not fmt[0] or msg.info.channels != 1:
            self.get_logger().error(
                f"cannot play {msg.info.channels} channel(s) of {msg.info.sample_format!r}",
                throttle_duration_sec=5.0,
            )
            return
        if fmt != self._format:
            self._open(fmt)
        with self._lock:  # before the write: its sound may end before write returns
            self._pending.add(msg.utterance_id)
            if not self._player.write(msg.utterance_id, bytes(msg.audio.data), msg.is_final):
                self._pending.discard(msg.utterance_id)

    def _open(self, fmt: tuple[str, int]) -> None:
        if self._player is not None:
            self._player.close()
        self._player = Player(
            PlayerConfig(
                device=self._device,
                sample_rate=fmt[1],
                pcm_format=fmt[0],
                start_buffer_s=self._start_buffer_s,
                latency_s=self._latency_s,
                envelope_rate_hz=self._envelope_hz if self._envelope_hz > 0 else 50.0,
            ),
            self,
        )
        self._format = fmt
        self.get_logger().info(f"playing {fmt[0]} at {fmt[1]} Hz on '{self._player.stats().device}'")

    def _on_latency(self, msg: UtteranceLatency) -> None:
        if msg.interrupted and self._player is not None:
            self._player.flush(msg.utterance_id)

    def _on_stop(self, request, response):
        cut = self._player.flush() if self._player is not None else []
        response.success, response.message = True, f"silenced {len(cut)} utterance(s)"
        return response

    # ------------------------------------------------------------------ playback.PlayerListener
    def sound_started(self, utterance_id: int, at: float) -> None:
        self._set_speaking(True)

    def sound_ended(self, utterance_id: int, at: float, played_s: float, flushed: bool) -> None:
        with self._lock:
            self._pending.discard(utterance_id)
            idle = not self._pending
        if idle:
            self._set_speaking(False)

    def envelope(self, level: float, at: float) -> None:
        if self._envelope_pub is not None:
            self._envelope_pub.publish(Float32(data=float(level)))

    def underrun(self, utterance_id: int, count: int) -> None:
        self.get_logger().warning(
            f"underrun in utterance {utterance_id}: the audio came slower than it plays"
        )

    def _set_speaking(self, value: bool) -> None:
        with self._lock:
            if self._speaking == value:
                return
            self._speaking = value
        self._speaking_pub.publish(Bool(data=value))

    def close(self) -> None:
        if self._player is not None:
            self._player.close()


def main(args=None) -> None:
    rclpy.init(args=args)
    try:
        node = PlayerNode()
    except PlaybackError as exc:
        print(f"[player_node] {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
