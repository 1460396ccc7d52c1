"""Our layer building blocks equal the computations of qwen-tts's modules / transformers' SDPA path."""

import pytest
import torch
import torch.nn.functional as F

from qwen3_tts_ros.engine.frame.layers import (
    apply_rope,
    causal_mask,
    grouped_query_attention,
    rms_norm,
    rope_tables,
)


def test_talker_mrope_is_plain_rope(tiny_custom_voice_tts):
    """The talker's interleaved M-RoPE with three identical position rows equals our 1-D tables."""
    from qwen_tts.core.models.modeling_qwen3_tts import apply_multimodal_rotary_pos_emb

    talker = tiny_custom_voice_tts.model.talker
    rotary = talker.model.rotary_emb
    positions = torch.arange(40)
    x = torch.randn(1, 4, 40, talker.config.head_dim)
    cos3, sin3 = rotary(x, positions.view(1, 1, -1).expand(3, 1, -1))
    section = talker.config.rope_scaling["mrope_section"]
    assert talker.config.rope_scaling["interleaved"]
    q_ref, _ = apply_multimodal_rotary_pos_emb(x, x, cos3, sin3, section, True)
    cos, sin = rope_tables(rotary.inv_freq, rotary.attention_scaling, 40, torch.float32)
    torch.testing.assert_close(apply_rope(x, cos, sin), q_ref, rtol=0, atol=0)


def test_code_predictor_rope(tiny_custom_voice_tts):
    from qwen_tts.core.models.modeling_qwen3_tts import apply_rotary_pos_emb

    model = tiny_custom_voice_tts.model.talker.code_predictor.model
    rotary = model.rotary_emb
    x = torch.randn(1, 4, 16, model.config.head_dim)
    cos_ref, sin_ref = rotary(x, torch.arange(16).view(1, -1))
    q_ref, _ = apply_rotary_pos_emb(x, x, cos_ref, sin_ref)
    cos, sin = rope_tables(rotary.inv_freq, rotary.attention_scaling, 16, torch.float32)
    torch.testing.assert_close(apply_rope(x, cos, sin), q_ref, rtol=0, atol=0)


def test_rms_norm_matches_module(tiny_custom_voice_tts):
    norm = tiny_custom_voice_tts.model.talker.model.norm
    x = torch.randn(2, 7, norm.weight.shape[0]) * 3
    torch.testing.assert_close(rms_norm(x, norm.weight, norm.variance_epsilon), norm(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "seq,cache_len,heads,kv_heads", [(1, 32, 4, 2), (6, 32, 4, 2), (5, 16, 16, 8), (3, 8, 4, 4)]
)
def test_grouped_query_attention_equals_repeated_kv(seq, cache_len, heads, kv_heads):
    """Folding query-head groups into the query length == transformers' repeat_kv + SDPA with the mask. In
    float64, so the bound is float64 rounding of a <= 32-term softmax-weighted sum (~1e-16 relative), with a
    wide margin: 1e-12."""
    g = torch.Generator().manual_seed(seq * 100 + cache_len)
    d = 16
    q = torch.randn(1, heads, seq, d, generator=g, dtype=torch.float64)
    k = torch.randn(1, kv_heads, cache_len, d, generator=g, dtype=torch.float64)
    v = torch.randn(1, kv_heads, cache_len, d, generator=g, dtype=torch.float64)
    positions = torch.arange(seq) + 2  # queries at positions 2..seq+1 of the cache
    mask = causal_mask(positions, cache_len)
    n_rep = heads // kv_heads
    k_rep = k[:, :, None].expand(1, kv_heads, n_rep, cache_len, d).reshape(1, heads, cache_len, d)
    v_rep = v[:, :, None].expand(1, kv_heads, n_rep, cache_len, d).reshape(1, heads, cache_len, d)
    ref = F.scaled_dot_product_attention(q, k_rep, v_rep, attn_mask=mask, scale=d**-0.5)
    ours = grouped_query_attention(q, k, v, mask, d**-0.5)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # the mask matters: slots after each query's position are not attended
    assert not torch.allclose(ours, F.scaled_dot_product_attention(q, k_rep, v_rep, scale=d**-0.5))
