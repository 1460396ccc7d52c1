"""What the node hands the synthesis worker (worker.py) and what it gets back: load settings, per-utterance
settings, queued texts and who is told what becomes of them, the worker's errors, and the sink and logger it
publishes and logs through."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from qwen3_tts_ros.engine.config import EngineConfig


class ConfigError(Exception):
    """A configuration the node cannot load; its message is the one log line naming the cause."""


class ModelReleased(ConfigError):
    """A transition failed in a way that cost the loaded model (CUDA out of memory): it was released, so the
    node must be configured again."""


class WorkerClosed(Exception):
    """The worker was closed (process exit) before this task could finish."""


class QueueFull(Exception):
    """enqueue(..., reject_when_full=True) found the queue full (queue policy): the text was not queued."""


class TextObserver(Protocol):
    """Told what becomes of one queued text (the say action's goals); called on the worker thread, or on the
    thread that dropped or cancelled the text, never with the worker's lock held."""

    def chunk(self, utterance_id: int, frames: int, audio_seconds: float) -> None:
        """A chunk of one of its utterances was published (frames and audio seconds of that chunk)."""

    def ended(self, outcome: str, error: str) -> None:
        """Once, when the text is done with: "done", "error" (error says why), or the reason it was stopped,
        dropped or cancelled (see QueuedText.stop_reason)."""


class Sink(Protocol):  # what the worker publishes through (the node)
    def chunk(  # fmt: skip
        self, utterance_id: int, sequence: int, frame_start: int, frame_count: int, is_final: bool,
        data: bytes,
    ) -> None: ...

    def speaking(self, value: bool) -> None: ...

    def latency(self, record: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class UtteranceSettings:
    """Per-utterance parameters, snapshotted when the text arrives."""

    sampling: dict[str, Any]  # SamplingParams.merged's explicit settings; None: the model's default
    first_chunk_frames: int
    chunk_frames: int


class TextPieces(Protocol):
    """Text still arriving in pieces (a text stream's engine TextFeed, stream_input.StreamFeed)."""

    def __iter__(self) -> Iterator[str]: ...

    def chars_put(self) -> int:
        """Characters received so far (the utterance's text_length)."""


# What one utterance speaks: a whole text, or a text stream's pieces.
Segment = str | TextPieces


@dataclasses.dataclass
class QueuedText:
    """One accepted text message or text stream. Its segments (sentences; a stream is one segment) are spoken
    back to back, one utterance (one utterance_id, one final chunk) each; the queue holds, drops and cancels
    whole texts, so a long text never pushes an earlier one out of the queue and is never left half-spoken
    with its beginning dropped."""

    segments: list[Segment]
    settings: UtteranceSettings
    received_at: float  # time.monotonic() when the text message (a stream's first words) arrived
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    observer: TextObserver | None = None
    # The SpeechRequest fields of its voice, resolved when it arrived (VoiceBook.resolve), so that a voice
    # removed or replaced later changes nothing queued; None: the default voice when it is spoken.
    voice: dict[str, Any] | None = None
    # Why it was cancelled or dropped: "stopped" (~/stop), "preempted" (interrupt policy), "dropped" (queue
    # full), "deactivated", "shutdown", "cancelled" (its action goal was cancelled); the first reason wins.
    stop_reason: str = ""
    started: int = 0  # segments the worker has begun speaking (worker thread)

    def stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.cancel.set()

    def unspoken(self) -> int:
        """Segments not begun yet: what a stop now leaves unspoken besides the utterance being spoken."""
        return len(self.segments) - self.started


@dataclasses.dataclass
class LoadConfig:
    engine: EngineConfig
    mode: str
    language: str
    speaker: str
    instruct: str
    ref_audio: str
    ref_text: str
    x_vector_only: bool
    pcm_format: str
    sample_rate: int
    warmup_text: str
    warmup_settings: UtteranceSettings
    voices_file: str = ""  # named voices (engine/voice_book.py); "" none
    gain: float = 1.0  # output.gain (linear; PcmEncoder applies it)


class Logger(Protocol):  # what the worker needs of an rclpy logger
    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...
