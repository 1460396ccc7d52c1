"""Optional `torch.compile` of the decoder stacks' step function (a knob, on by default on CUDA).

Why: a decode step is thousands of tiny kernels (one token, batch 1); eager RMSNorm alone is ~7 kernels
and RoPE ~6, so per-kernel launch latency, not arithmetic or memory, sets ms/frame (H100, 0.6B: 6751
kernels and 17 ms per frame eager; bench/results). Inductor fuses everything between the GEMMs of a whole
stack (layers.stack_forward, weights and caches as arguments, K/V stored with in-place index_put as in
gpt-fast). `dynamic=False` keeps shapes static for CUDA-graph capture: one compiled graph per stack and
step shape (talker step; code-predictor first and later steps). Compiled code is captured into our own
CUDA graphs (no inductor cudagraphs). Prefill (variable length) stays eager. The samplers' pure functions
(sampling.py) are compiled the same way.
"""

from __future__ import annotations

import functools

import torch

from .layers import EAGER, LayerFunctions, stack_forward
from .sampling import EAGER_SAMPLING, SamplingFunctions, choose_token, process_scores


def compile_available(device: torch.device) -> bool:
    """torch.compile with the Triton backend: CUDA devices with Triton installed (not every Jetson stack)."""
    if device.type != "cuda" or not hasattr(torch, "compile"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


# Compiled graphs per function: one per stack shape and dtype (talker step, code-predictor first and later
# steps: 3 per loaded model). dynamo's default of 8 is reached by a process that loads a few models or
# dtypes (a node reconfigured with other settings, a test session), and with fullgraph=True going past it
# is a hard error, not a fallback (seen in the H100 GPU test run).
RECOMPILE_LIMIT = 64


def _raise_recompile_limit() -> None:
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.7
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))


@functools.cache
def layer_functions(enabled: bool) -> LayerFunctions:
    """The compiled decoder-stack function when `enabled`, else the eager one (identical math).

    One compiled function per process, shared by every FrameGenerator: each new `torch.compile` wrapper has
    its own backend, so dynamo would compile again (BACKEND_MATCH) and count it toward its recompile limit
    (8), after which further generators would silently run uncompiled (other rounding).
    """
    if not enabled:
        return EAGER
    _raise_recompile_limit()
    return LayerFunctions(torch.compile(stack_forward, dynamic=False, fullgraph=True))


@functools.cache
def sampling_functions(enabled: bool) -> SamplingFunctions:
    """Compiled logits processing and token choice when `enabled` (~20 kernels per sampled token become a
    few: 16 tokens per frame), else the eager ones. The Exp(1) noise is drawn outside, eagerly."""
    if not enabled:
        return EAGER_SAMPLING
    _raise_recompile_limit()
    options = dict(dynamic=False, fullgraph=True)
    return SamplingFunctions(torch.compile(process_scores, **options), torch.compile(choose_token, **options))
