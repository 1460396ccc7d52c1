"""Decoder-layer building blocks over the weights of qwen-tts's modules, with static K/V caches.

Written for CUDA-graph capture: fixed shapes, caches written in place at a position tensor, attention over
the whole cache with an explicit boolean mask (keys at positions <= the query's). GQA folds each group
of query heads into the query length instead of repeating K/V (no K/V copy per step, and no
`enable_gqa`, which needs torch >= 2.5). The numerics follow qwen-tts/transformers
(RMSNorm in float32, RoPE tables computed in float32 then cast to the model dtype).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3TTSRMSNorm: normalise in float32, cast back, then scale."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def rope_tables(inv_freq: torch.Tensor, scaling: float, max_len: int, dtype: torch.dtype):
    """(max_len, head_dim) cos/sin tables for positions 0..max_len-1, like the rotary modules compute them.

    The talker's interleaved M-RoPE gets three identical position rows (text only), which makes it exactly
    1-D RoPE; test_layers.py checks this against the module.
    """
    positions = torch.arange(max_len, device=inv_freq.device, dtype=torch.float32)
    freqs = positions[:, None] * inv_freq.to(torch.float32)[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return (emb.cos() * scaling).to(dtype), (emb.sin() * scaling).to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, heads, S, D); cos/sin: (S, D) rows of the tables for x's positions."""
    return (x * cos) + (rotate_half(x) * sin)


def causal_mask(positions: torch.Tensor, cache_len: int) -> torch.Tensor:
    """(1, 1, S, cache_len) bool: query at positions[i] sees cache slots 0..positions[i]."""
    slots = torch.arange(cache_len, device=positions.device)
    return (slots[None, :] <= positions[:, None])[None, None]


class KVCache:
    """Static K/V buffers (1, kv_heads, max_len, head_dim) of one layer (decoder_layer writes them)."""

    def __init__(self, kv_heads: int, max_len: int, head_dim: int, device, dtype):
        self.k = torch.zeros(1, kv_heads, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros(1, kv_heads, max_len, head_dim, device=device, dtype=dtype)


def grouped_query_attention(q, k, v, mask, scale: float) -> torch.Tensor:
    """GQA without copying K/V (and without `enable_gqa`).

    q: (B, heads, S, D); k, v: (B, kv_heads, L, D); mask: (1, 1, S, L) bool -> (B, heads, S, D).
    Query head h uses K/V head h // n_rep (transformers' repeat_kv order). The n_rep query heads of a
    group are folded into the query length, so SDPA sees kv_heads heads of n_rep * S queries that all
    read the same, un-repeated cache; the mask rows are tiled to match.
    """
    b, heads, s, d = q.shape
    n_rep = heads // k.shape[1]
    q = q.reshape(b, k.shape[1], n_rep * s, d)
    if s > 1:
        mask = mask.repeat(1, 1, n_rep, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return out.reshape(b, heads, s, d)


def fuse_linears(linears) -> torch.Tensor:
    """Concatenate bias-free Linear weights along the output dim and make each module's weight a view of it.

    One GEMM instead of several per step, and no extra memory: the modules (and qwen-tts's own forward)
    keep working on views of the fused tensor.
    """
    if any(lin.bias is not None for lin in linears):
        raise ValueError("fuse_linears expects bias-free projections")
    fused = torch.cat([lin.weight.detach() for lin in linears], dim=0)
    start = 0
    for lin in linears:
        n = lin.weight.shape[0]
        lin.weight.data = fused[start : start + n]
        start += n
    return fused


def attention_inputs(
    x, input_norm, qkv_weight, q_norm, k_norm, cos, sin, eps: float, head_dim: int, kv_heads: int
):
    """Pre-attention half of a decoder layer: RMSNorm, fused QKV projection, q/k RMSNorm, RoPE.

    x (B, S, H) -> q (B, heads, S, D), k and v (B, kv_heads, S, D). A pure function of tensors, so one
    `torch.compile` of it serves every layer of a stack.
    """
    b, s, _ = x.shape
    kv_size = kv_heads * head_dim
    h = rms_norm(x, input_norm, eps)
    q, k, v = F.linear(h, qkv_weight).split([qkv_weight.shape[0] - 2 * kv_size, kv_size, kv_size], dim=-1)
    shape = (b, s, -1, head_dim)
    q = rms_norm(q.reshape(shape), q_norm, eps).transpose(1, 2)
    k = rms_norm(k.reshape(shape), k_norm, eps).transpose(1, 2)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v.reshape(shape).transpose(1, 2)


def layer_output(x, attn, o_weight, post_norm, gate_up_weight, down_weight, eps: float):
    """Post-attention half: output projection + residual, RMSNorm, fused SwiGLU MLP + residual."""
    b, _, s, _ = attn.shape
    h = x + F.linear(attn.transpose(1, 2).reshape(b, s, -1), o_weight)
    gate, up = F.linear(rms_norm(h, post_norm, eps), gate_up_weight).chunk(2, dim=-1)
    return h + F.linear(F.silu(gate) * up, down_weight)


def layer_weights(layer) -> tuple[torch.Tensor, ...]:
    """(attention_inputs weights, layer_output weights) of a qwen-tts decoder layer (q/k/v, gate/up fused)."""
    attn, mlp = layer.self_attn, layer.mlp
    qkv = fuse_linears([attn.q_proj, attn.k_proj, attn.v_proj])
    gate_up = fuse_linears([mlp.gate_proj, mlp.up_proj])
    pre = (layer.input_layernorm.weight, qkv, attn.q_norm.weight, attn.k_norm.weight)
    post = (attn.o_proj.weight, layer.post_attention_layernorm.weight, gate_up, mlp.down_proj.weight)
    return pre, post


def stack_forward(
    x, positions, mask, cos_table, sin_table, weights, k_caches, v_caches, norm_weight,
    eps: float, head_dim: int, kv_heads: int, scale: float,
):  # fmt: skip
    """A whole decoder stack as one pure function of tensors (gpt-fast style), for one `torch.compile`.

    Per layer: attention_inputs -> K/V stored into the static cache at `positions` (an in-place index_put,
    which inductor keeps in place) -> attention over the whole cache -> layer_output; then the final norm.
    Compiled as one graph, inductor also fuses across layer boundaries (residual add + next RMSNorm).
    """
    cos, sin = cos_table[positions], sin_table[positions]
    for (pre, post), k_cache, v_cache in zip(weights, k_caches, v_caches):
        q, k, v = attention_inputs(x, *pre, cos, sin, eps, head_dim, kv_heads)
        k_cache[:, :, positions] = k
        v_cache[:, :, positions] = v
        attn = grouped_query_attention(q, k_cache, v_cache, mask, scale)
        x = layer_output(x, attn, *post, eps)
    return rms_norm(x, norm_weight, eps)


class LayerFunctions(NamedTuple):
    """How a decoder stack is run: eagerly, or compiled (compile.py)."""

    stack: Callable = stack_forward


EAGER = LayerFunctions()


class DecoderStack:
    """N decoder layers + final norm with static caches of `max_len` positions (see stack_forward)."""

    def __init__(self, model, config, max_len: int, device, dtype):
        self.eps = config.rms_norm_eps
        self.max_len = max_len
        self.norm_weight = model.norm.weight
        attn = model.layers[0].self_attn
        self.head_dim, self.scale = attn.head_dim, attn.scaling
        self.kv_heads = config.num_key_value_heads
        self.caches = [KVCache(self.kv_heads, max_len, self.head_dim, device, dtype) for _ in model.layers]
        self.k_caches = [cache.k for cache in self.caches]
        self.v_caches = [cache.v for cache in self.caches]
        self.weights = [layer_weights(layer) for layer in model.layers]
        rotary = model.rotary_emb
        self.cos, self.sin = rope_tables(rotary.inv_freq.to(device), rotary.attention_scaling, max_len, dtype)

    def __call__(
        self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, fns: LayerFunctions = EAGER
    ) -> torch.Tensor:
        """x: (1, S, H) at `positions` (S,) -> final-normed hidden states (1, S, H)."""
        return fns.stack(
            x, positions, mask, self.cos, self.sin, self.weights, self.k_caches, self.v_caches,
            self.norm_weight, self.eps, self.head_dim, self.kv_heads, self.scale,
        )  # fmt: skip
