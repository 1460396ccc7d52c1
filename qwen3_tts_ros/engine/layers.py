"""Decoder-layer building blocks over the weights of qwen-tts's modules, with static K/V caches.

Written for CUDA-graph capture: fixed shapes, caches written in place at a position tensor, attention over
the whole cache with an explicit boolean mask (keys at positions <= the query's). GQA folds each group
of query heads into the query length instead of repeating K/V (no K/V copy per step, and no
`enable_gqa`, which needs torch >= 2.5). The numerics follow qwen-tts/transformers
(RMSNorm in float32, RoPE tables computed in float32 then cast to the model dtype).
"""

from __future__ import annotations

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
    """Static K/V buffers (1, kv_heads, max_len, head_dim) of one layer, written at a position tensor."""

    def __init__(self, kv_heads: int, max_len: int, head_dim: int, device, dtype):
        self.k = torch.zeros(1, kv_heads, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros(1, kv_heads, max_len, head_dim, device=device, dtype=dtype)

    def write(self, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k.index_copy_(2, positions, k)
        self.v.index_copy_(2, positions, v)


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


class Attention:
    """GQA self-attention with per-head q/k RMSNorm and RoPE, on a qwen-tts attention module's weights."""

    def __init__(self, module, cache: KVCache, eps: float):
        self.m = module
        self.cache = cache
        self.eps = eps
        self.head_dim = module.head_dim
        self.scale = module.scaling

    def __call__(self, x, cos, sin, positions, mask):
        b, s, _ = x.shape
        shape = (b, s, -1, self.head_dim)
        q = rms_norm(self.m.q_proj(x).view(shape), self.m.q_norm.weight, self.eps).transpose(1, 2)
        k = rms_norm(self.m.k_proj(x).view(shape), self.m.k_norm.weight, self.eps).transpose(1, 2)
        v = self.m.v_proj(x).view(shape).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        self.cache.write(positions, k, v)
        out = grouped_query_attention(q, self.cache.k, self.cache.v, mask, self.scale)
        return self.m.o_proj(out.transpose(1, 2).reshape(b, s, -1))


def swiglu(mlp, x: torch.Tensor) -> torch.Tensor:
    return mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))


class DecoderLayer:
    """Pre-norm decoder layer (attention + SwiGLU MLP, residuals) on a qwen-tts decoder layer's weights."""

    def __init__(self, layer, cache: KVCache, eps: float):
        self.layer = layer
        self.eps = eps
        self.attn = Attention(layer.self_attn, cache, eps)

    def __call__(self, x, cos, sin, positions, mask):
        h = x + self.attn(rms_norm(x, self.layer.input_layernorm.weight, self.eps), cos, sin, positions, mask)
        return h + swiglu(self.layer.mlp, rms_norm(h, self.layer.post_attention_layernorm.weight, self.eps))


class DecoderStack:
    """N decoder layers + final norm with static caches of `max_len` positions."""

    def __init__(self, model, config, max_len: int, device, dtype):
        self.eps = config.rms_norm_eps
        self.max_len = max_len
        self.norm_weight = model.norm.weight
        head_dim = model.layers[0].self_attn.head_dim
        self.caches = [
            KVCache(config.num_key_value_heads, max_len, head_dim, device, dtype) for _ in model.layers
        ]
        self.layers = [
            DecoderLayer(layer, cache, self.eps) for layer, cache in zip(model.layers, self.caches)
        ]
        rotary = model.rotary_emb
        self.cos, self.sin = rope_tables(rotary.inv_freq.to(device), rotary.attention_scaling, max_len, dtype)

    def __call__(self, x: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (1, S, H) at `positions` (S,) -> final-normed hidden states (1, S, H)."""
        cos, sin = self.cos[positions], self.sin[positions]
        for layer in self.layers:
            x = layer(x, cos, sin, positions, mask)
        return rms_norm(x, self.norm_weight, self.eps)
