"""The layers of the causal codec decoder (causal_codec.py), each holding the state it carries from chunk to
chunk on static device buffers: causal and transposed convolutions, residual units, ConvNeXt blocks and the
sliding-window attention. Each wraps the qwen-tts module's weights; calling it runs one chunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class CausalConv:
    """qwen-tts CausalConvNet (stride 1) with its left padding replaced by the carried input history."""

    def __init__(self, module, device, dtype):
        conv = module.conv
        if module.stride != 1 or conv.stride != (1,) or conv.padding != (0,):
            raise ValueError("streaming decode supports stride-1 causal convolutions only")
        self.conv = conv
        self.history_len = module.padding  # (kernel - 1) * dilation
        self.history = torch.zeros(1, conv.in_channels, self.history_len, device=device, dtype=dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.history_len == 0:
            return self.conv(x)
        x = torch.cat([self.history, x], dim=-1)
        self.history.copy_(x[..., x.shape[-1] - self.history_len :])
        return self.conv(x)


class CausalTransConv:
    """qwen-tts CausalTransConvNet as one GEMM plus overlap-add, carrying the input samples that overlap.

    Output sample t * stride + j is bias + sum over taps m of W[:, :, j + m * stride] . x[t - m]: a GEMM of
    the inputs with the (in, out * kernel) weight view gives every input sample's output footprint, and the
    footprints of the last taps - 1 inputs reach into the next chunk. (torch's CPU transposed convolution
    takes a slow path for the few-sample inputs of a streaming chunk; the GEMM does not, on any device.)
    """

    def __init__(self, module, device, dtype):
        conv = module.conv
        (kernel,), (stride,) = conv.kernel_size, conv.stride
        if (
            module.left_pad != 0
            or module.right_pad != kernel - stride
            or kernel % stride
            or conv.padding != (0,)
            or conv.output_padding != (0,)
            or conv.dilation != (1,)
            or conv.groups != 1
        ):
            raise ValueError("unexpected causal transposed convolution layout")
        self.stride = stride
        self.taps = kernel // stride
        self.out_channels = conv.out_channels
        self.weight = conv.weight.view(conv.in_channels, conv.out_channels * kernel)  # a view: no copy
        self.bias = conv.bias
        self.history_len = self.taps - 1
        self.history = torch.zeros(1, conv.in_channels, self.history_len, device=device, dtype=dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h = x.shape[-1], self.history_len
        if h:
            x = torch.cat([self.history, x], dim=-1)
            self.history.copy_(x[..., x.shape[-1] - h :])
        footprint = (x[0].transpose(0, 1) @ self.weight).view(
            n + h, self.out_channels, self.taps, self.stride
        )
        y = footprint[h:, :, 0]
        for tap in range(1, self.taps):
            y = y + footprint[h - tap : h - tap + n, :, tap]
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.permute(1, 0, 2).reshape(1, self.out_channels, n * self.stride)


class ResidualUnit:
    """Qwen3TTSTokenizerV2DecoderDecoderResidualUnit."""

    def __init__(self, module, device, dtype):
        self.act1, self.act2 = module.act1, module.act2
        self.conv1 = CausalConv(module.conv1, device, dtype)
        self.conv2 = CausalConv(module.conv2, device, dtype)

    def __call__(self, x):
        return self.conv2(self.act2(self.conv1(self.act1(x)))) + x


class ConvNeXt:
    """Qwen3TTSTokenizerV2ConvNeXtBlock."""

    def __init__(self, module, device, dtype):
        self.block = module
        self.dwconv = CausalConv(module.dwconv, device, dtype)

    def __call__(self, x):
        b = self.block
        h = self.dwconv(x).permute(0, 2, 1)
        h = b.pwconv2(b.act(b.pwconv1(b.norm(h))))
        return x + (b.gamma * h).permute(0, 2, 1)


class Attention:
    """Sliding-window attention of a pre_transformer layer; keeps the last window - 1 frames' keys/values."""

    def __init__(self, attn, window: int, device, dtype):
        from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import (
            apply_rotary_pos_emb,
            repeat_kv,
        )

        self.attn = attn
        self.rope = apply_rotary_pos_emb
        self.repeat_kv = repeat_kv
        kv_heads = attn.k_proj.out_features // attn.head_dim
        self.keys = torch.zeros(1, kv_heads, window - 1, attn.head_dim, device=device, dtype=dtype)
        self.values = torch.zeros_like(self.keys)

    def __call__(self, h, cos, sin, mask):
        a = self.attn
        n = h.shape[1]
        shape = (1, n, -1, a.head_dim)
        q = a.q_norm(a.q_proj(h).view(shape)).transpose(1, 2)
        k = a.k_norm(a.k_proj(h).view(shape)).transpose(1, 2)
        v = a.v_proj(h).view(shape).transpose(1, 2)
        q, k = self.rope(q, k, cos, sin)
        keep = self.keys.shape[2]
        k = torch.cat([self.keys, k], dim=2)
        v = torch.cat([self.values, v], dim=2)
        self.keys.copy_(k[:, :, k.shape[2] - keep :])
        self.values.copy_(v[:, :, v.shape[2] - keep :])
        k = self.repeat_kv(k, a.num_key_value_groups)
        v = self.repeat_kv(v, a.num_key_value_groups)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=a.scaling)
        return a.o_proj(out.transpose(1, 2).reshape(1, n, -1))
