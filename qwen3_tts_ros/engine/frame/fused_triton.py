"""The fused Triton frame: the reference frame (reference.py) as ~600 Triton kernels (triton_kernels.py)
instead of ~1,834.

Same steps, same weights, same static state (state.py) as the reference frame, in this order:
  frame_start            frames[t][0] = c0; code-predictor rows [talker hidden, E0(c0)]; frame sum = E0(c0)
  noise                  Exp(1) noise of the frame's 16 draws, one (16, V) tensor (torch's RNG, capturable)
  15 code-predictor steps: [projection (1.7B)] -> 5 layers x (norm+qkv, attention, o+residual,
                         norm+gate/up+SiLU*up, down+residual) -> norm+lm_head[j] -> sample (+ embedding row)
  talker_input           frame sum + text row, position P + t
  talker step            28 layers (attention split over the cache, then combined) -> norm+codec_head
                         (+ past_hidden) -> sample with qwen-tts's logits processing (+ counters)
The prefill and everything around the frame stay as they are; the samplers' settings and state tensors
are the reference samplers' own, so `set` / `reset` serve both paths.

Runs on CUDA with Triton >= 3.0 (tl.sort / tl.cumsum); a Jetson torch without Triton keeps the reference
path (compiled or eager) under CUDA graphs. On CPU only under TRITON_INTERPRET=1 (tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .layers import DecoderStack
from .state import FrameState


def _triton_missing(device: torch.device) -> str | None:
    """Why the fused kernels cannot run on `device` (None: they can)."""
    needs = "needs CUDA with Triton >= 3 (pip install 'triton>=3'; not a usual Jetson torch)"
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"{needs}, and the device is cpu"
    if device.type not in ("cpu", "cuda"):
        return f"{needs}, and the device is {device.type}"
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return f"{needs}, and Triton is not installed"
    major = int(triton.__version__.split(".")[0])
    if major >= 3 and hasattr(tl, "sort") and hasattr(tl, "cumsum"):
        return None
    return f"{needs}, and Triton is {triton.__version__}"


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _accumulator(dtype: torch.dtype):
    import triton.language as tl

    return tl.float64 if dtype == torch.float64 else tl.float32


@dataclass(frozen=True)
class Tuning:
    """Launch shapes of the kernels on CUDA (bench/fused_sweep.py measures the alternatives).

    gemv_tile: BLOCK_N x BLOCK_K elements per row (x2 for SwiGLU) of one GEMV program's accumulator;
    gemv_programs: about how many programs a GEMV is split into (more keep more SMs loading).
    """

    # H200, 2026-12-02 (bench/results/2026-12-02-h200-fused/sweep.json): 0.6B 4.30 -> 3.53 ms/frame
    # against 8192 / 256 / 4 / 4 / 4; each value was the best of the ones tried alone.
    gemv_tile: int = 16384
    gemv_programs: int = 512
    gemv_warps: int = 8
    attention_warps: int = 2
    sample_warps: int = 16


TUNING = Tuning()


def gemv(x, weight, out, *, norm=None, eps=0.0, residual=None, swiglu=False, logits=False, bias=None,
         normed=None):  # fmt: skip
    """out[m] = epilogue(W rms_norm(x[m])) for the rows of x (1 or 2); see triton_kernels._gemv_kernel."""
    from .triton_kernels import _gemv_kernel

    rows, k = x.shape
    n = weight.shape[0] // 2 if swiglu else weight.shape[0]
    epilogue = 1 if residual is not None else 2 if swiglu else 3 if logits else 4 if bias is not None else 0
    tuning = TUNING
    if x.is_cuda:
        block_n = min(32, max(2, _pow2(n // tuning.gemv_programs)))
        block_k = max(32, min(_pow2(k), tuning.gemv_tile // (rows * block_n * (2 if swiglu else 1))))
    else:  # the interpreter (tests): few, large programs; each program costs it Python time, not registers
        block_n, block_k = min(64, _pow2(n)), _pow2(k)
    dummy = weight
    _gemv_kernel[(triton_cdiv(n, block_n),)](
        x, x.stride(0), norm if norm is not None else dummy, weight, out, out.stride(0),
        residual if residual is not None else dummy, residual.stride(0) if residual is not None else 0,
        bias if bias is not None else dummy, normed if normed is not None else dummy,
        eps, N=n, K=k,
        M=rows, BLOCK_N=block_n, BLOCK_K=block_k, NORM=norm is not None, EPILOGUE=epilogue,
        WRITE_NORMED=normed is not None, ACC=_accumulator(weight.dtype), num_warps=tuning.gemv_warps,
    )  # fmt: skip
    return out


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


class FusedStack:
    """A DecoderStack's layers (not its final norm) on one or two positions with the fused kernels.

    splits: how many programs share one K/V head's attention (1 for the code predictor's 16-slot cache;
    the talker's long cache is split so that more SMs read it, then combined).
    """

    def __init__(self, stack: DecoderStack, max_rows: int, splits: int):
        self.stack = stack
        weight = stack.weights[0][0][1]
        device, dtype = weight.device, weight.dtype
        self.hidden = stack.weights[0][1][0].shape[0]
        d, kv = stack.head_dim, stack.kv_heads
        self.q_size = weight.shape[0] - 2 * kv * d
        self.heads = self.q_size // d
        self.acc = _accumulator(dtype)
        self.block_l = min(32, _pow2(stack.max_len))
        if splits > 1:  # each split a whole number of blocks
            per_split = triton_cdiv(triton_cdiv(stack.max_len, splits), self.block_l) * self.block_l
            splits = triton_cdiv(stack.max_len, per_split)
            self.splits, self.split_len = _pow2(splits), per_split
        else:
            self.splits, self.split_len = 1, stack.max_len
        new = dict(device=device, dtype=dtype)
        intermediate = stack.weights[0][1][2].shape[0] // 2
        self.h = torch.zeros(max_rows, self.hidden, **new)
        self.qkv = torch.zeros(max_rows, weight.shape[0], **new)
        self.attn = torch.zeros(max_rows, self.q_size, **new)
        self.mlp = torch.zeros(max_rows, intermediate, **new)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        # Every split program writes its slots on every call: one past the position (or past the cache, when
        # the split count was rounded up to a power of two) stores (-inf, 0, 0), which combine weighs as 0.
        self.part_m = torch.full((self.heads, self.splits), float("-inf"), device=device, dtype=acc)
        self.part_l = torch.zeros(self.heads, self.splits, device=device, dtype=acc)
        self.part_o = torch.zeros(self.heads, self.splits, d, device=device, dtype=acc)

    def __call__(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (rows, H) at positions (rows,) -> the last layer's output (rows, H), before the final norm."""
        from .triton_kernels import _attention_kernel, _combine_kernel

        stack, rows = self.stack, x.shape[0]
        h, qkv, attn, mlp = self.h[:rows], self.qkv[:rows], self.attn[:rows], self.mlp[:rows]
        d, kv = stack.head_dim, stack.kv_heads
        grid = (self.heads, self.splits)
        current = x
        for (pre, post), k_cache, v_cache in zip(stack.weights, stack.k_caches, stack.v_caches):
            input_norm, qkv_weight, q_norm, k_norm = pre
            o_weight, post_norm, gate_up, down = post
            gemv(current, qkv_weight, qkv, norm=input_norm, eps=stack.eps)
            _attention_kernel[grid](
                qkv, qkv.stride(0), q_norm, k_norm, stack.cos, stack.sin, positions, k_cache, v_cache,
                attn, attn.stride(0), self.part_m, self.part_l, self.part_o, stack.eps, stack.scale,
                SPLIT_LEN=self.split_len, CACHE_LEN=stack.max_len, S=rows, KV_HEADS=kv, NREP=self.heads // kv,
                D=d, BLOCK_L=self.block_l, SPLITS=self.splits, ACC=self.acc, num_warps=TUNING.attention_warps,
            )  # fmt: skip
            if self.splits > 1:
                _combine_kernel[(self.heads,)](
                    self.part_m, self.part_l, self.part_o, attn, SPLITS=self.splits, D=d
                )
            gemv(attn, o_weight, h, residual=current)  # the stack's input itself is never written
            gemv(h, gate_up, mlp, norm=post_norm, eps=stack.eps, swiglu=True)
            gemv(mlp, down, h, residual=h)
            current = h
        return h


class FusedTritonFrame:
    """The frame path "fused-triton" (paths.py)."""

    name = "fused-triton"
    TALKER_SPLITS = 16

    @classmethod
    def unavailable(cls, device: torch.device) -> str | None:
        return _triton_missing(device)

    def __init__(self, state: FrameState) -> None:
        from .triton_kernels import _sample_kernel  # noqa: F401  (fails here, not mid-capture, without Triton)

        self.state = g = state
        cp = g.code_predictor
        device, dtype = g.device, g.dtype
        self.talker_stack = FusedStack(g.talker.stack, 1, self.TALKER_SPLITS)
        self.cp_stack = FusedStack(cp.stack, 2, 1)
        projection = cp.projection
        self.projection = None if isinstance(projection, torch.nn.Identity) else projection
        talker_hidden = g.past_hidden.shape[-1]
        new = dict(device=device, dtype=dtype)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        self.cp_inputs = torch.zeros(2, talker_hidden, **new)  # [talker hidden, E0(c0)], then E_j(c_j)
        self.cp_projected = (
            torch.zeros(2, self.cp_stack.hidden, **new) if self.projection is not None else None
        )
        self.frame_sum = torch.zeros(talker_hidden, device=device, dtype=acc)
        self.talker_x = torch.zeros(1, talker_hidden, **new)
        self.position = torch.zeros(1, device=device, dtype=torch.long)
        self.cp_vocab = cp.lm_head[0].weight.shape[0]
        self.talker_vocab = g.talker.codec_head.weight.shape[0]
        self.cp_logits = torch.zeros(self.cp_vocab, device=device, dtype=torch.float32)
        self.talker_logits = torch.zeros(self.talker_vocab, device=device, dtype=torch.float32)
        self.noise = torch.ones(g.num_code_groups, max(self.cp_vocab, self.talker_vocab), device=device)
        self.cp_positions = cp.positions
        self.reciprocal = device.type == "cuda"  # sampling.divide
        s = g.talker_sampler
        self._bool_views = dict(
            seen=s.seen.view(torch.uint8), eos=s.eos_mask.view(torch.uint8),
            suppress=s.suppress_mask.view(torch.uint8),
        )  # fmt: skip

    def describe(self) -> str:
        return f"fused Triton frame (talker attention in {self.talker_stack.splits} splits)"

    def _sample(self, logits, noise, code_out, warper, *, talker: bool, embedding=None):
        from .triton_kernels import _sample_kernel

        g = self.state
        s = g.talker_sampler
        b = self._bool_views
        hidden = self.cp_inputs.shape[1]
        t = warper.temperature
        dummy = logits
        _sample_kernel[(1,)](
            logits, noise, code_out, logits.shape[0],
            warper.do_sample.view(torch.uint8), t.value, t.reciprocal, warper.top_k, warper.one_minus_top_p,
            b["seen"], b["eos"], b["suppress"], s.penalty_factor, s.penalty.value, s.penalty.reciprocal,
            s.generated, s.min_new_tokens, g.step,
            embedding if embedding is not None else dummy, self.cp_inputs, self.frame_sum, hidden,
            BLOCK_V=_pow2(logits.shape[0]), BLOCK_H=_pow2(hidden), PROCESS=talker,
            EMBED=embedding is not None, RECIPROCAL=self.reciprocal, num_warps=TUNING.sample_warps,
        )  # fmt: skip

    def run(self, index: int) -> None:
        from .triton_kernels import _frame_start_kernel, _talker_input_kernel

        g = self.state
        cp = g.code_predictor
        frame = g.frames[index]
        hidden = self.cp_inputs.shape[1]
        _frame_start_kernel[(1,)](
            g.code0, frame, g.past_hidden, g.talker.codec_embedding.weight, self.cp_inputs, self.frame_sum,
            hidden, BLOCK_H=_pow2(hidden),
        )  # fmt: skip
        self.noise.exponential_(1)
        cp_stack = self.cp_stack
        for j in range(g.num_code_groups - 1):
            rows = 2 if j == 0 else 1
            x = self.cp_inputs[:rows]
            if self.projection is not None:
                x = gemv(x, self.projection.weight, self.cp_projected[:rows], bias=self.projection.bias)
            h = cp_stack(x, self.cp_positions[j])
            gemv(h[rows - 1 :], cp.lm_head[j].weight, self.cp_logits, norm=cp.stack.norm_weight,
                 eps=cp.stack.eps, logits=True)  # fmt: skip
            noise = self.noise[j, : self.cp_vocab]
            self._sample(self.cp_logits, noise, frame[j + 1 :], g.code_sampler.warper, talker=False,
                         embedding=cp.codec_embedding[j].weight)  # fmt: skip
        hidden_t = self.talker_x.shape[1]
        _talker_input_kernel[(1,)](
            self.frame_sum, g.text_track, g.step, g.text_len, g.prompt_len, g.max_seq_len - 1,
            self.talker_x, self.position, hidden_t, BLOCK_H=_pow2(hidden_t),
        )  # fmt: skip
        talker = g.talker
        h = self.talker_stack(self.talker_x, self.position)
        gemv(h, talker.codec_head.weight, self.talker_logits, norm=talker.stack.norm_weight,
             eps=talker.stack.eps, logits=True, normed=g.past_hidden.view(1, -1))  # fmt: skip
        self._sample(self.talker_logits, self.noise[-1, : self.talker_vocab], g.code0,
                     g.talker_sampler.warper, talker=True)  # fmt: skip
