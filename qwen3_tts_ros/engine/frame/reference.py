"""The reference frame: one frame as torch operations on the model parts (talker.py, code_predictor.py,
sampling.py), as qwen-tts's talker.generate does it:
  code predictor: [talker hidden, E0(c0)] -> codes 1..15 (15 steps unrolled, sampled on the device)
  frame t = [c0, c1..c15]; next talker input = sum of the 16 codebook embeddings
            + text track row t (trailing_text_hidden[t], or tts_pad_embed once the text is used up)
  talker at position P + t -> hidden, logits -> processed/sampled next c0; step counter t += 1

Two paths of one frame: "compiled" torch.compiles the decoder stacks' step function and the samplers
(compile.py: CUDA with Triton), "eager" runs them as they are (anywhere; ~6,700 kernels per frame on a GPU).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .compile import compile_available, layer_functions, sampling_functions
from .state import FrameState


class ReferenceFrame:
    name: ClassVar[str]
    compiled: ClassVar[bool]

    def __init__(self, state: FrameState) -> None:
        self.state = state
        if self.compiled:
            state.use_functions(layer_functions(True), sampling_functions(True))

    def describe(self) -> str:
        how = "torch.compiled decoder stacks and samplers" if self.compiled else "eager torch operations"
        return f"reference frame, {how}"

    def run(self, index: int) -> None:
        s = self.state
        code0 = s.code0
        embed0 = s.talker.codec_embedding(code0[:, None])
        codes = s.code_predictor.predict(s.past_hidden, embed0, s.code_sampler)
        s.frames[index].copy_(torch.cat([code0, *codes]))
        text = s.text_track.index_select(0, torch.minimum(s.step, s.text_len))[None]
        position = torch.clamp(s.prompt_len + s.step, max=s.max_seq_len - 1)
        embed = s.code_predictor.frame_embedding(embed0, codes) + text
        hidden, logits = s.talker.step(embed, position)
        s.past_hidden.copy_(hidden)
        s.code0.copy_(s.talker_sampler(logits))
        s.step.add_(1)


class CompiledFrame(ReferenceFrame):
    name = "compiled"
    compiled = True

    @classmethod
    def unavailable(cls, device: torch.device) -> str | None:
        if compile_available(device):
            return None
        return "torch.compile needs a CUDA device with Triton installed (pip install triton)"


class EagerFrame(ReferenceFrame):
    name = "eager"
    compiled = False

    @classmethod
    def unavailable(cls, device: torch.device) -> str | None:
        return None
