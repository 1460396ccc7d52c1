"""`CaptureReport`: what an engine captured and replayed as CUDA graphs, and which frame path it runs, for
logs, diagnostics, bench scripts and tests (instead of reading the generator's or the codec's fields)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CaptureReport:
    frame_path: str  # the frame path's name (frame/paths.py), e.g. "compiled"
    frame_path_reason: str  # why it was chosen
    frame_path_description: str  # what it runs, e.g. "reference frame, eager torch operations"
    frame_graph: bool = False  # the frame replay is a captured CUDA graph
    prefill_bucket_graphs: tuple[int, ...] = ()  # bucket sizes with a captured prefill graph
    prefill_bucket_replays: dict[int, int] = field(default_factory=dict)  # per captured bucket: prefills run
    uncaptured_prefills: int = 0  # prefills run eagerly (no bucket fits, or nothing captured)
    uncaptured_prefill_lengths: tuple[int, ...] = ()  # their distinct prompt lengths
    codec_graph_frames: tuple[int, ...] = ()  # chunk sizes (frames) with a captured codec graph
    graphs_captured: int = (
        0  # CUDA graphs captured so far (frame + buckets + codec; more than once: recaptured)
    )
