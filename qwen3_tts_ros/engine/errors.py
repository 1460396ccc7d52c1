"""The engine's own exceptions (besides ValueError / TypeError for what a caller gives it)."""

from __future__ import annotations

import torch


class EngineConfigError(ValueError):
    """Settings that cannot be used (on this machine); the message names the setting."""


class ModelLoadError(Exception):
    """The model could not be loaded; the message names the model and the cause (also its __cause__)."""


class EngineOutOfMemory(ModelLoadError):
    """CUDA ran out of memory (loading, capturing or warming up); what was half-built is released where the
    message says so, and it says what to do."""


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out of memory anywhere in the exception chain (a capture that ran out of memory can surface as
    a later "capture invalidated" error whose context is the OutOfMemoryError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.cuda.OutOfMemoryError) or "out of memory" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
