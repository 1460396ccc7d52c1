"""The talker (28-layer decoder that predicts codebook 0) with a static K/V cache.

Runs on the weights of qwen-tts's `Qwen3TTSTalkerForConditionalGeneration`: `prefill` over a prompt of P
positions (0..P-1), `step` one position at a device position tensor (CUDA-graph capturable). Positions are
plain 0..n: at batch size 1 without padding qwen-tts's M-RoPE positions are the same.

`prefill` also takes a prompt padded at the end (a fixed-size, CUDA-graph capturable bucket) with the
index of its last real position as a device tensor: attention is causal, so the real positions never see
the padding, and the K/V the padding writes at positions >= P are overwritten by the decode steps (step p
writes slot p before it attends to slots <= p) before anything reads them.
"""

from __future__ import annotations

import torch

from .layers import EAGER, DecoderStack, LayerFunctions, causal_mask


class Talker:
    def __init__(self, talker, max_seq_len: int, device, dtype, fns: LayerFunctions = EAGER):
        """fns: the layer functions of `step` (possibly compiled); prefill is always eager."""
        self.fns = fns
        self.max_seq_len = max_seq_len
        self.stack = DecoderStack(talker.model, talker.config, max_seq_len, device, dtype)
        self.codec_head = talker.codec_head
        self.codec_embedding = talker.model.codec_embedding

    def forward(
        self, embeds: torch.Tensor, positions: torch.Tensor, fns: LayerFunctions = EAGER
    ) -> torch.Tensor:
        """embeds (1, S, H) at positions (S,) -> final hidden states (1, S, H); writes the cache."""
        return self.stack(embeds, positions, causal_mask(positions, self.max_seq_len), fns)

    def prefill(
        self, embeds: torch.Tensor, last: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt (1, P, H) -> (last hidden (1, 1, H), codebook-0 logits of the last position (1, V)).

        last: (1,) int64 device index of the last real position when `embeds` is padded; None: P - 1.
        """
        positions = torch.arange(embeds.shape[1], device=embeds.device)
        hidden = self.forward(embeds, positions)
        # codec_head over all positions (like qwen-tts), then the last one.
        logits = self.codec_head(hidden)
        if last is None:
            return hidden[:, -1:], logits[:, -1]
        return hidden.index_select(1, last), logits.index_select(1, last)[:, 0]

    def step(self, embed: torch.Tensor, position: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One position: embed (1, 1, H), position (1,) -> (hidden (1, 1, H), logits (1, V))."""
        hidden = self.forward(embed, position, self.fns)
        return hidden, self.codec_head(hidden)[:, -1]
