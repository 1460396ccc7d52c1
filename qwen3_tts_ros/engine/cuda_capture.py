"""What every CUDA-graph capture of the engine needs around it (frame_generator.py, causal_codec.py)."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def no_cyclic_gc():
    """Python's cyclic GC collected first, then kept off for the block: put only the captures in it, not a
    warm-up that may compile for a minute. A collection inside a capture that frees something dropped
    earlier (a generator's CUDA graphs, events or memory) invalidates the capture ("operation failed due to
    a previous error during capture", seen in the GPU tests); torch 2.11's `torch.cuda.graph` no longer
    collects before capturing."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
