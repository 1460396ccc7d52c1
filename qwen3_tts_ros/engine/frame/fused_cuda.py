"""The frame path "fused-cuda": the fused frame as CUDA C++ kernels (csrc/), for GPUs whose torch has no
Triton (a usual JetPack torch), built by the machine's own nvcc (cuda_build.py).

The same launch sequence as the fused Triton frame (fused_triton.py), kernel for kernel:
  frame_start            frames[t][0] = c0; code-predictor rows [talker hidden, E0(c0)]; frame sum = E0(c0)
  noise                  Exp(1) noise of the frame's 16 draws, one (16, V) tensor (torch's RNG, capturable)
  15 code-predictor steps: [projection (1.7B)] -> layers x (norm+qkv, attention, o+residual,
                         norm+gate/up+SiLU*up, down+residual) -> norm+lm_head[j] -> sample (+ embedding row)
  talker_input           frame sum + text row, position P + t
  talker step            layers (attention split over the cache, then combined) -> norm+codec_head
                         (+ past_hidden) -> sample with qwen-tts's logits processing (+ counters)
The samplers' settings and state tensors are the reference samplers' own, so `set` / `reset` serve every path.

Prebuild: `python -m qwen3_tts_ros.engine.frame.fused_cuda --build [--arch 8.7]` (no GPU needed with --arch).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, ClassVar

import torch

from . import cuda_build

if TYPE_CHECKING:
    from .state import FrameState

EPILOGUE = {"store": 0, "residual": 1, "swiglu": 2, "logits": 3, "bias": 4}  # csrc/launchers.h, Epilogue
MAX_HEAD_DIM = 128  # csrc/kernels.cuh, ATTENTION_MAX_D


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class CudaStack:
    """A DecoderStack's layers (not its final norm) on one or two positions with the CUDA kernels.

    splits: how many blocks share one K/V head's attention (1 for the code predictor's 16-slot cache; the
    talker's long cache is split so that more SMs read it, then combined)."""

    def __init__(self, ops, stack, max_rows: int, splits: int):
        self.ops, self.stack = ops, stack
        weight = stack.weights[0][0][1]
        device, dtype = weight.device, weight.dtype
        self.hidden = stack.weights[0][1][0].shape[0]
        d, kv = stack.head_dim, stack.kv_heads
        if d > MAX_HEAD_DIM or d % 2:
            raise ValueError(f"the fused CUDA frame needs an even head_dim <= {MAX_HEAD_DIM}, got {d}")
        self.q_size = weight.shape[0] - 2 * kv * d
        self.heads = self.q_size // d
        self.split_len = -(-stack.max_len // splits)
        self.splits = -(-stack.max_len // self.split_len)
        new = dict(device=device, dtype=dtype)
        intermediate = stack.weights[0][1][2].shape[0] // 2
        self.h = torch.zeros(max_rows, self.hidden, **new)
        self.qkv = torch.zeros(max_rows, weight.shape[0], **new)
        self.attn = torch.zeros(max_rows, self.q_size, **new)
        self.mlp = torch.zeros(max_rows, intermediate, **new)
        acc = _accumulator(dtype)
        self.part_m = torch.full((self.heads, self.splits), float("-inf"), device=device, dtype=acc)
        self.part_l = torch.zeros(self.heads, self.splits, device=device, dtype=acc)
        self.part_o = torch.zeros(self.heads, self.splits, d, device=device, dtype=acc)

    def gemv(self, x, weight, out, *, norm=None, residual=None, bias=None, normed=None, epilogue="store"):
        eps = self.stack.eps
        self.ops.gemv(x, norm, weight, out, residual, bias, normed, eps, EPILOGUE[epilogue])
        return out

    def __call__(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (rows, H) at positions (rows,) -> the last layer's output (rows, H), before the final norm."""
        stack, rows, ops = self.stack, x.shape[0], self.ops
        h, qkv, attn, mlp = self.h[:rows], self.qkv[:rows], self.attn[:rows], self.mlp[:rows]
        d, kv = stack.head_dim, stack.kv_heads
        current = x
        for (pre, post), k_cache, v_cache in zip(stack.weights, stack.k_caches, stack.v_caches):
            input_norm, qkv_weight, q_norm, k_norm = pre
            o_weight, post_norm, gate_up, down = post
            self.gemv(current, qkv_weight, qkv, norm=input_norm)
            ops.attention(
                qkv, q_norm, k_norm, stack.cos, stack.sin, positions, k_cache, v_cache, attn,
                self.part_m, self.part_l, self.part_o, stack.eps, stack.scale, self.split_len, self.splits,
                kv, self.heads // kv, d,
            )  # fmt: skip
            if self.splits > 1:
                ops.combine(self.part_m, self.part_l, self.part_o, attn)
            self.gemv(attn, o_weight, h, residual=current, epilogue="residual")  # x itself is never written
            self.gemv(h, gate_up, mlp, norm=post_norm, epilogue="swiglu")
            self.gemv(mlp, down, h, residual=h, epilogue="residual")
            current = h
        return h


class FusedCudaFrame:
    """The frame path "fused-cuda" (paths.py; module doc) over the shared FrameState."""

    name: ClassVar[str] = "fused-cuda"
    TALKER_SPLITS = 16

    @classmethod
    def unavailable(cls, device) -> str | None:
        device = torch.device(device)
        if device.type != "cuda" or not torch.cuda.is_available():
            return f"needs a CUDA device (device is {device})"
        capability = torch.cuda.get_device_capability(device)
        if capability < cuda_build.MIN_CAPABILITY:
            return "needs sm_80 or newer, this GPU is sm_{}{}".format(*capability)
        if cuda_build.built_library(cuda_build.arch_of(device)) is not None:
            return None
        why_not = cuda_build.missing_build_tools()
        if why_not is None:
            return None
        directory = cuda_build.build_dir(cuda_build.arch_of(device))
        return f"no built kernels in {directory} and {why_not}"

    def __init__(self, state: FrameState) -> None:
        self.state = g = state
        self.ops = ops = cuda_build.kernels(g.device)  # builds here (logged) on a first use, not mid-capture
        cp = g.code_predictor
        device, dtype = g.device, g.dtype
        self.talker_stack = CudaStack(ops, g.talker.stack, 1, self.TALKER_SPLITS)
        self.cp_stack = CudaStack(ops, cp.stack, 2, 1)
        projection = cp.projection
        self.projection = None if isinstance(projection, torch.nn.Identity) else projection
        talker_hidden = g.past_hidden.shape[-1]
        new = dict(device=device, dtype=dtype)
        self.cp_inputs = torch.zeros(2, talker_hidden, **new)  # [talker hidden, E0(c0)], then E_j(c_j)
        self.cp_projected = (
            torch.zeros(2, self.cp_stack.hidden, **new) if self.projection is not None else None
        )
        self.frame_sum = torch.zeros(talker_hidden, device=device, dtype=_accumulator(dtype))
        self.talker_x = torch.zeros(1, talker_hidden, **new)
        self.position = torch.zeros(1, device=device, dtype=torch.long)
        self.cp_vocab = cp.lm_head[0].weight.shape[0]
        self.talker_vocab = g.talker.codec_head.weight.shape[0]
        self.cp_logits = torch.zeros(self.cp_vocab, device=device, dtype=torch.float32)
        self.talker_logits = torch.zeros(self.talker_vocab, device=device, dtype=torch.float32)
        self.noise = torch.ones(g.num_code_groups, max(self.cp_vocab, self.talker_vocab), device=device)
        self.cp_positions = cp.positions
        s = g.talker_sampler
        self._process = [
            s.seen.view(torch.uint8), s.eos_mask.view(torch.uint8), s.suppress_mask.view(torch.uint8),
            s.penalty_factor, s.penalty.reciprocal, s.generated, s.min_new_tokens, g.step,
        ]  # fmt: skip
        self._kernel_count = None

    def describe(self) -> str:
        arch = cuda_build.arch_of(self.state.device)
        layers = len(self.talker_stack.stack.weights), len(self.cp_stack.stack.weights)
        steps = self.state.num_code_groups - 1
        per_layer_talker = 6 if self.talker_stack.splits > 1 else 5
        count = (
            3 + layers[0] * per_layer_talker + 2 + steps * (layers[1] * 5 + 2 + (self.projection is not None))
        )
        return f"fused CUDA C++ frame (sm_{arch}), {count} kernels"

    def _sample(self, logits, noise, code_out, warper, *, talker: bool, embedding=None):
        t = warper.temperature
        embed = [embedding, self.cp_inputs, self.frame_sum] if embedding is not None else []
        self.ops.sample(
            logits, noise, code_out, warper.do_sample.view(torch.uint8), t.reciprocal, warper.top_k,
            warper.one_minus_top_p, self._process if talker else [], embed, self.cp_inputs,
        )  # fmt: skip

    def run(self, index: int) -> None:
        """One whole frame on the device (capturable); its 16 codes go to state.frames[index]."""
        g, ops = self.state, self.ops
        cp = g.code_predictor
        frame = g.frames[index]
        ops.frame_start(g.code0, frame, g.past_hidden, g.talker.codec_embedding.weight, self.cp_inputs,
                        self.frame_sum)  # fmt: skip
        self.noise.exponential_(1)
        cp_stack = self.cp_stack
        for j in range(g.num_code_groups - 1):
            rows = 2 if j == 0 else 1
            x = self.cp_inputs[:rows]
            if self.projection is not None:
                x = cp_stack.gemv(x, self.projection.weight, self.cp_projected[:rows],
                                  bias=self.projection.bias, epilogue="bias")  # fmt: skip
            h = cp_stack(x, self.cp_positions[j])
            cp_stack.gemv(h[rows - 1 :], cp.lm_head[j].weight, self.cp_logits, norm=cp.stack.norm_weight,
                          epilogue="logits")  # fmt: skip
            noise = self.noise[j, : self.cp_vocab]
            self._sample(self.cp_logits, noise, frame[j + 1 :], g.code_sampler.warper, talker=False,
                         embedding=cp.codec_embedding[j].weight)  # fmt: skip
        ops.talker_input(self.frame_sum, g.text_track, g.step, g.text_len, g.prompt_len, g.max_seq_len - 1,
                         self.talker_x, self.position)  # fmt: skip
        talker = g.talker
        h = self.talker_stack(self.talker_x, self.position)
        self.talker_stack.gemv(h, talker.codec_head.weight, self.talker_logits,
                               norm=talker.stack.norm_weight, normed=g.past_hidden.view(1, -1),
                               epilogue="logits")  # fmt: skip
        noise = self.noise[-1, : self.talker_vocab]
        self._sample(self.talker_logits, noise, g.code0, g.talker_sampler.warper, talker=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="compile the kernels into the cache now")
    parser.add_argument("--arch", help="compute capability to build for, e.g. 8.7 (default: this GPU's)")
    parser.add_argument("--if-gpu", action="store_true", help="no GPU and no --arch: exit 0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.build:
        parser.print_help()
        return 2
    if args.arch:
        arch = args.arch.replace(".", "")
    elif torch.cuda.is_available():
        arch = cuda_build.arch_of(torch.device("cuda"))
    else:
        print("no GPU here: name the target with --arch (8.7 for an Orin)", file=sys.stderr)
        return 0 if args.if_gpu else 2
    if cuda_build.built_library(arch) is not None:
        print(f"already built: {cuda_build.built_library(arch)}")
        return 0
    directory = cuda_build.build(arch)
    print(f"built: {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
