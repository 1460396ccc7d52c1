"""What every CUDA-graph capture of the engine needs around it (frame/generator.py, causal_codec.py)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable

import torch


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


def capture_graphs(device: torch.device, units: list[Callable[[], None]], warmups: int = 3) -> list:
    """One CUDA graph per unit, in one memory pool (the graphs never run concurrently), after `warmups` runs
    of every unit on a side stream (lazy inits and allocator state outside capture). Call under no_grad."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmups):
            for unit in units:
                unit()
    torch.cuda.current_stream(device).wait_stream(side)
    graphs: list[torch.cuda.CUDAGraph] = []
    with no_cyclic_gc():
        for unit in units:
            graph = torch.cuda.CUDAGraph()
            pool = graphs[0].pool() if graphs else None
            with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                unit()
            graphs.append(graph)
    torch.cuda.synchronize(device)
    return graphs
