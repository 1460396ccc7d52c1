"""The worker's Sink in front of NodeOutputs: what is published goes on as before, and with playback.enabled
also to a local sound device (playback.Player), whose clock then decides tts/speaking, the first-sound
latency of each utterance and when say goals that wait for playback end; and tts/envelope, the loudness of
what is played (of the audio timeline without playback). With playback off (the default) it only adds the
envelope, if asked for.

Threads: chunk / speaking / latency come from the worker; the Player's moments (sound_started,
sound_ended, envelope, underrun) from its Timeline thread; flush and watch from executor threads."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from std_msgs.msg import Float32

from qwen3_tts_ros.node.outputs import NodeOutputs
from qwen3_tts_ros.node.playback import DTYPES, FULL_SCALE, Player, PlayerConfig, Timeline
from qwen3_tts_ros.node.worker_types import Logger

# A watcher of one utterance's sound: fn(utterance_id, played_seconds, flushed) once its sound ended.
SoundWatcher = Callable[[int, float, bool], None]


class PlaybackSink:
    def __init__(self, node, outputs: NodeOutputs, logger: Logger):
        self._node = node
        self._outputs = outputs
        self._log = logger
        self._lock = threading.Lock()
        self.player: Player | None = None
        self._timeline: Timeline | None = None  # the envelope's, without a player
        self._envelope_pub = None
        self._reset()

    def _reset(self) -> None:
        self._generating = False
        self._speaking = False
        self._pending: set[int] = set()  # utterances written to the player whose sound has not ended
        self._first_chunk_at: dict[int, float] = {}
        self._first_sound_at: dict[int, float] = {}
        self._held: dict[int, dict[str, Any]] = {}  # latency records waiting for their first sound
        self._ended: dict[int, tuple[float, bool]] = {}  # utterance -> (played seconds, flushed), recent
        self._watchers: dict[int, list[SoundWatcher]] = {}
        self._window = 0
        self._env_rest = np.zeros(0, np.float64)
        self._env_clock = 0.0  # without a player: when the audio timeline's next sample plays

    # ------------------------------------------------------------------ lifecycle (executor)
    def open(self, v: dict[str, Any]) -> None:
        """Configure: open the device (playback.PlaybackError names it and lists the devices) and the
        envelope publisher."""
        self._reset()
        rate_hz = v["playback.envelope_rate_hz"]
        self._window = round(v["output.sample_rate"] / rate_hz) if rate_hz > 0 else 0
        self._format, self._rate = v["output.format"], v["output.sample_rate"]
        if v["playback.enabled"]:
            self.player = Player(
                PlayerConfig(
                    device=v["playback.device"],
                    sample_rate=v["output.sample_rate"],
                    pcm_format=v["output.format"],
                    start_buffer_s=v["playback.start_buffer_s"],
                    latency_s=v["playback.latency_s"],
                    envelope_rate_hz=rate_hz if rate_hz > 0 else 50.0,
                ),
                self,
            )
            stats = self.player.stats()
            self._log.info(
                f"playback on '{stats.device}' (device latency {stats.device_latency_s * 1e3:.0f} ms)"
            )
        elif self._window:
            self._timeline = Timeline()
        if self._window:
            with self._outputs.lock:
                self._envelope_pub = self._node.create_publisher(Float32, "tts/envelope", 10)

    def close(self) -> None:
        """Cleanup / shutdown: silence, close the device, end the watchers (as flushed)."""
        player, timeline = self.player, self._timeline
        self.player = self._timeline = None
        if player is not None:
            player.close()  # ends what was still sounding through sound_ended(flushed)
        if timeline is not None:
            timeline.close()
        with self._lock:
            watchers, self._watchers = self._watchers, {}
        for u, fns in watchers.items():
            for fn in fns:
                fn(u, 0.0, True)
        with self._outputs.lock:
            if self._envelope_pub is not None:
                self._node.destroy_publisher(self._envelope_pub)
                self._envelope_pub = None
        self._set_speaking(False)

    def flush(self, through: int | None = None) -> None:
        """Stop, interrupt, cancel, deactivate, shutdown: silence now (playback.Player.flush)."""
        if self.player is not None:
            self.player.flush(through)
        elif self._timeline is not None:
            self._timeline.drop(lambda fn, args: False)
            with self._lock:
                self._env_clock = 0.0
            self.envelope(0.0, time.monotonic())

    def watch(self, utterance_id: int, fn: SoundWatcher) -> bool:
        """Call fn once the utterance's sound has ended (at once if it has); False with playback off."""
        if self.player is None:
            return False
        with self._lock:
            done = self._ended.get(utterance_id)
            if done is None:
                self._watchers.setdefault(utterance_id, []).append(fn)
        if done is not None:
            fn(utterance_id, *done)
        return True

    # ------------------------------------------------------------------ Sink (worker thread)
    def chunk(  # fmt: skip
        self,
        utterance_id: int,
        sequence: int,
        frame_start: int,
        frame_count: int,
        is_final: bool,
        data: bytes,
    ) -> None:
        if sequence == 0:
            with self._lock:
                self._first_chunk_at[utterance_id] = time.monotonic()
        self._outputs.chunk(utterance_id, sequence, frame_start, frame_count, is_final, data)
        if self.player is not None:
            with self._lock:  # held across the write: its sound may end before write returns
                self._pending.add(utterance_id)
                if not self.player.write(utterance_id, data, is_final):
                    self._pending.discard(utterance_id)
        elif self._timeline is not None:
            self._timeline_envelope(data)

    def speaking(self, value: bool) -> None:
        if self.player is None:
            self._outputs.speaking(value)
            return
        with self._lock:
            self._generating = value
            done = not value and not self._pending
        if done:
            self._set_speaking(False)

    def latency(self, record: dict[str, Any]) -> None:
        u = record["utterance_id"]
        if self.player is None:
            self._outputs.latency(dict(record, first_text_to_first_sound_ms=0.0))
            return
        if record["interrupted"]:
            self.player.flush(u)
        with self._lock:
            if u in self._first_sound_at or u in self._ended:
                record = self._with_sound(record)
            else:
                self._held[u] = record
                record = None
        if record is not None:
            self._outputs.latency(record)

    def _with_sound(self, record: dict[str, Any]) -> dict[str, Any]:  # with the lock held
        u = record["utterance_id"]
        sound_at, chunk_at = self._first_sound_at.pop(u, None), self._first_chunk_at.pop(u, None)
        ms = 0.0
        if sound_at is not None and chunk_at is not None:
            ms = record["end_to_end_first_audio_ms"] + (sound_at - chunk_at) * 1e3
        return dict(record, first_text_to_first_sound_ms=ms)

    # ------------------------------------------------------------------ playback.PlayerListener (Timeline)
    def sound_started(self, utterance_id: int, at: float) -> None:
        with self._lock:
            self._first_sound_at[utterance_id] = at
            held = self._held.pop(utterance_id, None)
            record = self._with_sound(held) if held is not None else None
        self._set_speaking(True)
        if record is not None:
            self._outputs.latency(record)

    def sound_ended(self, utterance_id: int, at: float, played_s: float, flushed: bool) -> None:
        with self._lock:
            self._pending.discard(utterance_id)
            self._ended[utterance_id] = (played_s, flushed)
            while len(self._ended) > 1000:  # only recent ones are asked about
                del self._ended[next(iter(self._ended))]
            held = self._held.pop(utterance_id, None)
            record = self._with_sound(held) if held is not None else None
            watchers = self._watchers.pop(utterance_id, [])
            done = not self._generating and not self._pending
        if record is not None:
            self._outputs.latency(record)
        for fn in watchers:
            try:
                fn(utterance_id, played_s, flushed)
            except Exception:  # noqa: BLE001 - a watcher must not end the Timeline thread
                self._log.error("sound watcher failed: " + traceback.format_exc())
        if done:
            self._set_speaking(False)

    def envelope(self, level: float, at: float) -> None:
        with self._outputs.lock:
            if self._envelope_pub is not None:
                self._envelope_pub.publish(Float32(data=float(level)))

    def underrun(self, utterance_id: int, count: int) -> None:
        self._log.warning(
            f"playback underrun in utterance {utterance_id}: the audio came slower than it plays "
            "(counted in /diagnostics; playback.start_buffer_s buffers more)"
        )

    # ------------------------------------------------------------------ helpers
    def _set_speaking(self, value: bool) -> None:
        with self._lock:
            if self._speaking == value:
                return
            self._speaking = value
        self._outputs.speaking(value)

    def _timeline_envelope(self, data: bytes) -> None:
        """Without a player: the envelope of the published audio, timed as if played from its first chunk
        at real-time speed (back to back after what came before)."""
        samples = (
            np.frombuffer(data, dtype=DTYPES[self._format]).astype(np.float64) / FULL_SCALE[self._format]
        )
        rate = self._rate
        now = time.monotonic()
        with self._lock:
            audio = np.concatenate([self._env_rest, samples])
            whole = len(audio) // self._window * self._window
            self._env_rest = audio[whole:]
            start = max(self._env_clock, now)
            self._env_clock = start + len(samples) / rate
        levels = np.sqrt(np.mean(audio[:whole].reshape(-1, self._window) ** 2, axis=1)) if whole else []
        for k, level in enumerate(levels):
            at = start + (k + 1) * self._window / rate
            self._timeline.at(at, self.envelope, float(level), at)

    def status(self, node_name: str, hardware_id: str) -> DiagnosticStatus | None:
        """'<node>: playback' for /diagnostics, with playback on."""
        player = self.player
        if player is None:
            return None
        s = player.stats()
        values = {
            "device": s.device,
            "device_latency_s": f"{s.device_latency_s:.3f}",
            "underruns": str(s.underruns),
            "device_underflows": str(s.device_underflows),
            "utterances_played": str(s.utterances_played),
            "utterances_flushed": str(s.utterances_flushed),
            "played_seconds": f"{s.played_seconds:.3f}",
            "buffered_seconds": f"{s.buffered_seconds:.3f}",
            "sounding": "true" if self._speaking else "false",
        }
        level = DiagnosticStatus.WARN if s.underruns else DiagnosticStatus.OK
        message = f"{s.underruns} underrun(s)" if s.underruns else "ok"
        return DiagnosticStatus(
            level=level,
            name=f"{node_name}: playback",
            message=message,
            hardware_id=hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
