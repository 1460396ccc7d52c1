"""Optional `torch.compile` of the decode's pure per-layer functions (a knob, on by default on CUDA).

Why: a decode step is thousands of tiny kernels (one token, batch 1); eager RMSNorm alone is ~7 kernels
and RoPE ~6, so per-kernel launch latency, not arithmetic or memory, sets ms/frame. Inductor fuses each
half of a layer into a few kernels around the GEMMs. The halves are pure functions of tensors (weights are
arguments), so each compiles once per input shape and serves every layer; `dynamic=False` keeps shapes
static for CUDA-graph capture, and the K/V cache write stays outside (in place, never functionalised).
Compiled code is captured into our own CUDA graphs (no inductor cudagraphs). Prefill (variable length)
stays eager.
"""

from __future__ import annotations

import functools

import torch

from .layers import EAGER, LayerFunctions, attention_inputs, layer_output


def compile_available(device: torch.device) -> bool:
    """torch.compile with the Triton backend: CUDA devices with Triton installed (not every Jetson stack)."""
    if device.type != "cuda" or not hasattr(torch, "compile"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def layer_functions(enabled: bool) -> LayerFunctions:
    """Compiled layer halves when `enabled`, else the eager ones (identical math).

    One compiled pair per process, shared by every FrameGenerator: each new `torch.compile` wrapper has its
    own backend, so dynamo would compile again (BACKEND_MATCH) and count it toward its recompile limit (8),
    after which further generators would silently run the halves uncompiled (other rounding).
    """
    if not enabled:
        return EAGER
    options = dict(dynamic=False, fullgraph=True)
    return LayerFunctions(torch.compile(attention_inputs, **options), torch.compile(layer_output, **options))
