"""The code predictor (multi-token prediction head): codebooks 1..15 of one frame from the talker state.

Per frame, like qwen-tts's nested `code_predictor.generate(max_new_tokens=15)`: a 2-position prefill
[talker hidden, embedding of codebook 0] at positions 0, 1 -> lm_head[0] -> code 1; then 14 single steps,
step j feeding code j through codec_embedding[j-1] at position j+1 -> lm_head[j] -> code j+1. Inputs pass
small_to_mtp_projection (Linear on 1.7B, Identity on 0.6B). The loop is unrolled with constant positions
and a 16-slot static cache, so the whole frame is one CUDA-graph capture unit.
"""

from __future__ import annotations

import torch

from .layers import EAGER, DecoderStack, LayerFunctions, causal_mask


class CodePredictor:
    def __init__(self, code_predictor, device, dtype, fns: LayerFunctions = EAGER):
        self.fns = fns
        self.num_groups = code_predictor.config.num_code_groups
        self.projection = code_predictor.small_to_mtp_projection
        self.lm_head = code_predictor.lm_head
        self.codec_embedding = code_predictor.model.codec_embedding
        cache_len = self.num_groups  # positions 0..15
        self.stack = DecoderStack(code_predictor.model, code_predictor.config, cache_len, device, dtype)
        self.positions = [torch.arange(2, device=device)] + [
            torch.tensor([j + 1], device=device) for j in range(1, self.num_groups - 1)
        ]
        self.masks = [causal_mask(p, cache_len) for p in self.positions]

    def predict(self, past_hidden: torch.Tensor, embed0: torch.Tensor, sample) -> list[torch.Tensor]:
        """past_hidden, embed0: (1, 1, H_talker); sample(logits (1, V) float32) -> code (1,) int64.

        Returns codes 1..15, each (1,) int64.
        """
        x = torch.cat((past_hidden, embed0), dim=1)
        codes = []
        for j in range(self.num_groups - 1):
            if j > 0:
                x = self.codec_embedding[j - 1](codes[-1][:, None])
            hidden = self.stack(self.projection(x), self.positions[j], self.masks[j], self.fns)
            logits = self.lm_head[j](hidden)[:, -1]
            codes.append(sample(logits.to(torch.float32)))
        return codes

    def frame_embedding(self, embed0: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        """Codec part of the next talker input: the sum of the 16 codebook embeddings (1, 1, H)."""
        parts = [embed0] + [self.codec_embedding[i](codes[i][:, None]) for i in range(self.num_groups - 1)]
        return torch.cat(parts, dim=1).sum(1, keepdim=True)
