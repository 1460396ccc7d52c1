"""`FrameOptions`: the one typed options object of the frame loop, from `EngineConfig` / `from_pretrained`
down to the FrameGenerator. Every default of the frame loop is written here, once.

`from_pretrained(..., frame_options=...)` takes a FrameOptions or the dict docs/LIBRARY.md documents,
converted once by `FrameOptions.from_mapping`: `prefill_buckets`, `launch_ahead`, `frames_per_replay`, `path`
(a frame path name, paths.py), and the older switches `compile` (False: the eager path; True: the compiled
one) and `fused` (True: the fused Triton frame). Unknown keys are refused with a message naming the known
ones.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_MAX_SEQ_LEN = 2048  # static K/V cache: prompt + generated frames of one utterance
DEFAULT_LAUNCH_AHEAD = 2  # replays in flight on CUDA graphs: the next frame is queued while one is handed out
SUGGESTED_PREFILL_BUCKETS = (
    32,
    64,
    128,
    256,
)  # the node's and the CLI's; the library captures none by default
AUTO = "auto"  # the fastest path that runs on the device (paths.AUTO_ORDER)
REFERENCE = "reference"  # the reference frame: compiled where that runs, else eager


def frame_path_choices() -> tuple[str, ...]:
    """What a frame path setting may be: "auto" or a path's name (paths.py)."""
    from .paths import path_names  # paths.py does not import this module

    return (AUTO, REFERENCE, *path_names())


def check_prefill_buckets(buckets, max_seq_len: int | None = None) -> None:
    """ValueError unless every bucket is a positive prompt length (and, given max_seq_len, fits it)."""
    sizes = list(buckets)
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"prefill_buckets must be positive prompt lengths, got {sizes}")
    if max_seq_len is not None and sizes and max(sizes) > max_seq_len:
        raise ValueError(f"prefill_buckets {sizes} must be <= max_seq_len={max_seq_len}")


def suggested_prefill_buckets(max_seq_len: int) -> tuple[int, ...]:
    """The suggested buckets that fit `max_seq_len`."""
    return tuple(b for b in SUGGESTED_PREFILL_BUCKETS if b <= max_seq_len)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FrameOptions:
    """How the frame loop runs. Checked when made (ValueError naming the option)."""

    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    use_cuda_graphs: bool = True  # no effect on CPU
    launch_ahead: int | None = None  # replays in flight; None: DEFAULT_LAUNCH_AHEAD under CUDA graphs, else 1
    frames_per_replay: int = 1  # frames per replay, i.e. per captured graph
    prefill_buckets: tuple[int, ...] = ()  # prompt sizes to pad prefills to and capture; (): unpadded
    path: str = AUTO  # a frame path name (paths.py) or "auto": the chooser picks (paths.choose_frame_path)

    def __post_init__(self) -> None:

        counts = ["max_seq_len", "frames_per_replay"]
        for name in counts if self.launch_ahead is None else [*counts, "launch_ahead"]:
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))
        if not isinstance(self.use_cuda_graphs, bool):
            raise ValueError(f"use_cuda_graphs must be true or false, got {self.use_cuda_graphs!r}")
        object.__setattr__(self, "prefill_buckets", tuple(self.prefill_buckets))
        check_prefill_buckets(self.prefill_buckets, self.max_seq_len)
        if self.path not in frame_path_choices():
            choices = ", ".join(frame_path_choices())
            raise ValueError(f"frame_path must be one of {choices}, got {self.path!r}")

    def replays_in_flight(self, graphs: bool) -> int:
        """launch_ahead resolved: with CUDA graphs the host has frames to overlap, else nothing."""
        if self.launch_ahead is not None:
            return self.launch_ahead
        return DEFAULT_LAUNCH_AHEAD if graphs else 1

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | FrameOptions | None, **base: Any) -> FrameOptions:
        """`options` (a FrameOptions, the documented dict, or None) over `base` (FrameOptions fields the
        caller gives as arguments of its own, e.g. from_pretrained's max_seq_len; None values: not given).

        The dict's `compile` and `fused` switches become `path`: fused True -> "fused-triton"; compile
        False -> "eager"; compile True -> "compiled"; fused False alone -> "reference"; neither (or None) ->
        "auto". ValueError for unknown
        keys, for `path` together with those switches, and as the constructor.
        """
        given = {name: value for name, value in base.items() if value is not None}
        if isinstance(options, FrameOptions):
            return replace(options, **given)
        mapping = dict(options or {})
        known = {f.name for f in fields(cls)} - {"max_seq_len", "use_cuda_graphs"} | {"compile", "fused"}
        unknown = sorted(set(mapping) - known)
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ValueError(f"frame_options: unknown key(s) {names}; known: {', '.join(sorted(known))}")
        compile, fused = mapping.pop("compile", None), mapping.pop("fused", None)
        for name, value in (("compile", compile), ("fused", fused)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"frame_options {name} must be true, false or None, got {value!r}")
        if "path" in mapping and (compile is not None or fused is not None):
            raise ValueError("frame_options: give either path or the compile / fused switches, not both")
        if fused:
            mapping["path"] = "fused-triton"
        elif compile is not None:
            mapping["path"] = "compiled" if compile else "eager"
        elif fused is False:
            mapping["path"] = REFERENCE
        return cls(**{**given, **mapping})
