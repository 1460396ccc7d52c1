"""Frame paths: the ways one frame (code predictor, samplers, talker step) can run, and the one choice
among them.

A frame path is a class with the `FramePath` interface below, built over the shared `FrameState` (state.py);
the FrameGenerator captures `run` into its CUDA graph (or calls it eagerly) and owns everything else (prefill,
launch-ahead ring, text track, stopping). A new path is one new module plus one line in `FRAME_PATHS`; "auto"
tries the names of `AUTO_ORDER` in order and takes the first that can run on the device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

import torch

from ..errors import EngineConfigError
from .fused_cuda import FusedCudaFrame
from .fused_triton import FusedTritonFrame
from .reference import CompiledFrame, EagerFrame

if TYPE_CHECKING:
    from .state import FrameState


class FramePath(Protocol):
    name: ClassVar[str]  # "fused-triton" | "compiled" | "eager" | ...

    @classmethod
    def unavailable(cls, device: torch.device) -> str | None:
        """None: it can run on `device`; else why not, and what to install."""

    def __init__(self, state: FrameState) -> None:
        """Builds its kernels / functions over the shared state."""

    def describe(self) -> str:
        """For logs: e.g. "fused Triton frame (talker attention in 16 splits)"."""

    def run(self, index: int) -> None:
        """The whole frame on the device (capturable): reads and writes the state, writes
        state.frames[index]."""


# Every frame path, one line each.
FRAME_PATHS: list[type[FramePath]] = [
    FusedTritonFrame,
    FusedCudaFrame,
    CompiledFrame,
    EagerFrame,
]


# "auto" on CUDA: the first of these that can run there, fastest first (BENCHMARKS.md: fused Triton 3.5 ms
# a 0.6B frame on an H200; the fused CUDA C++ frame, for a torch without Triton, built once by the machine's
# nvcc; compiled 7.3 and eager 17 on an H100). On other devices the eager reference frame, which is the spec
# every other path is checked against (the Triton interpreter runs the fused frame on the CPU only when a test
# asks for it by name).
AUTO_ORDER = ("fused-triton", "fused-cuda", "compiled", "eager")


def path_names() -> tuple[str, ...]:
    return tuple(path.name for path in FRAME_PATHS)


def frame_path(name: str) -> type[FramePath]:
    """The path class named `name` (ValueError for an unknown name)."""
    for path in FRAME_PATHS:
        if path.name == name:
            return path
    raise ValueError(f"unknown frame path {name!r}; known: {', '.join(path_names())}")


def choose_frame_path(device: torch.device, requested: str = "auto") -> tuple[type[FramePath], str]:
    """-> (the path class to run on `device`, why it was chosen: for logs and diagnostics).

    requested: "auto", "reference" (the first reference path of AUTO_ORDER that runs) or a path name. A named
    path that cannot run here: EngineConfigError with its reason.
    """
    device = torch.device(device)
    order = AUTO_ORDER
    if requested == "reference":
        order = tuple(name for name in AUTO_ORDER if name in ("compiled", "eager"))
    elif requested != "auto":
        path = frame_path(requested)
        why_not = path.unavailable(device)
        if why_not is not None:
            raise EngineConfigError(f"frame path {requested!r} cannot run on {device}: {why_not}")
        return path, f"{requested} (asked for)"
    if device.type != "cuda":
        return frame_path("eager"), f"eager ({requested} on {device}: the reference frame)"
    skipped = []
    for name in order:
        path = frame_path(name)
        why_not = path.unavailable(device)
        if why_not is None:
            passed = "".join(f"; {s}" for s in skipped)
            return (
                path,
                f"{name} ({requested} on {device}: the first of {', '.join(order)} that runs here{passed})",
            )
        skipped.append(f"not {name}: {why_not}")
    raise EngineConfigError(f"no frame path runs on {device}: {'; '.join(skipped)}")
