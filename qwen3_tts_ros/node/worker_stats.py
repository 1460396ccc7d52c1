"""What the synthesis worker counts and measures, for /diagnostics: one dataclass, written by the worker
thread under its lock; `SynthesisWorker.snapshot()` hands out a copy that other threads read freely."""

from __future__ import annotations

import collections
import dataclasses

from qwen3_tts_ros.engine.stats import percentile

TTFA_WINDOW = 200  # utterances kept for the p50/p95 of time to first audio


def _window(values) -> collections.deque:
    return collections.deque(values, maxlen=TTFA_WINDOW)


@dataclasses.dataclass
class WorkerStats:
    utterances: int = 0
    interrupted: int = 0
    errors: int = 0
    runaway: int = 0  # utterances ended by the runaway guard
    dropped: int = 0  # texts dropped from the queue (full, interrupt, stop, deactivate)
    ttfa_ms: collections.deque = dataclasses.field(default_factory=lambda: _window(()))
    last_rtf: float = 0.0
    last_ms_per_frame: float = 0.0
    capture_time_s: float = 0.0
    cuda_graphs_captured: bool = False
    gpu_memory_allocated_mb: float = 0.0
    device: str = ""
    dtype: str = ""
    frame_path: str = ""  # the engine's frame path and why it was chosen (frame/paths.py)
    model: str = ""
    mode: str = ""
    last_error: str = ""
    last_failed: bool = False
    # set in a snapshot
    queue_depth: int = 0
    speaking: bool = False

    @property
    def ttfa_p50_ms(self) -> float:
        return percentile(self.ttfa_ms, 50)

    @property
    def ttfa_p95_ms(self) -> float:
        return percentile(self.ttfa_ms, 95)

    @property
    def ttfa_last_ms(self) -> float:
        return self.ttfa_ms[-1] if self.ttfa_ms else 0.0

    def add_utterance(self, record: dict, cancelled: bool, published: bool) -> None:
        """Count one utterance from its latency record (utterance.speak); `cancelled`: its text was stopped,
        `published`: some of its audio was."""
        error = record["error"] if record["stopped_by"] == "error" else ""
        self.utterances += 1
        self.interrupted += int(record["interrupted"] and not error)
        self.errors += int(bool(error))
        self.runaway += int(record["stopped_by"] == "runaway")
        self.last_failed = bool(error) and not cancelled
        if error:
            self.last_error = error
        if published:
            self.ttfa_ms.append(record["time_to_first_audio_ms"])
        if record["frames"]:
            self.last_rtf = record["real_time_factor"]
            self.last_ms_per_frame = record["frame_ms_mean"]

    def copy(self, **changes) -> WorkerStats:
        return dataclasses.replace(self, ttfa_ms=_window(self.ttfa_ms), **changes)
