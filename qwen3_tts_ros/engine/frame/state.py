"""`FrameState`: what every frame path reads and writes, built once per FrameGenerator: the model parts
(talker, code predictor, samplers) and the static buffers of one utterance.

Per-utterance settings and counters live in device tensors, so one captured frame serves every request:
`start` writes them (and the text track) before the prefill, and the frame reads them.

The generator owns the state and the path, the path holds the state, and nothing points back: a reference
cycle would leave a dropped generator to Python's cyclic GC, which can run in the middle of another
generator's CUDA-graph capture and free CUDA memory and graphs there, which invalidates that capture (seen
in the GPU tests; cuda_capture.py).
"""

from __future__ import annotations

import torch

from ..types import SamplingParams
from .code_predictor import CodePredictor
from .layers import EAGER, LayerFunctions
from .options import FrameOptions
from .prefill import Prefill
from .sampling import EAGER_SAMPLING, CodeSampler, SamplingFunctions, TalkerSampler
from .talker import Talker


class FrameState:
    def __init__(self, model, options: FrameOptions):
        """model: qwen-tts `Qwen3TTSForConditionalGeneration` (device and dtype are taken from it)."""
        talker = model.talker
        weight = talker.codec_head.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.max_seq_len = max_seq_len = options.max_seq_len
        tc = talker.config
        self.eos_token_id = tc.codec_eos_token_id
        self.num_code_groups = tc.num_code_groups
        self.frames_per_replay = options.frames_per_replay
        with torch.no_grad():  # the layer functions are eager until a path says otherwise (use_functions)
            self.talker = Talker(talker, max_seq_len, self.device, self.dtype)
            self.code_predictor = CodePredictor(talker.code_predictor, self.device, self.dtype)
            self.talker_sampler = TalkerSampler(tc.vocab_size, tc.codec_eos_token_id, self.device)
            self.code_sampler = CodeSampler(talker.code_predictor.config.vocab_size, self.device)
            hidden = dict(device=self.device, dtype=self.dtype)
            index = dict(device=self.device, dtype=torch.long)
            self.past_hidden = torch.zeros(1, 1, tc.hidden_size, **hidden)  # talker output of the last step
            self.code0 = torch.zeros(1, **index)  # sampled codebook-0 id
            self.step = torch.zeros(1, **index)  # index t of the next frame
            self.prompt_len = torch.zeros(1, **index)  # P: frame t's talker step is at position P + t
            # Text track of the talker steps: row t for frame t, row text_len (tts_pad) from then on. Frame t
            # exists only for t <= max_seq_len - P, so max_seq_len text rows + the pad row are enough.
            self.text_track = torch.zeros(max_seq_len + 1, tc.hidden_size, **hidden)
            self.text_len = torch.zeros(1, **index)
            self.tts_pad = torch.zeros(tc.hidden_size, **hidden)
            self.last_position = torch.zeros(1, **index)  # P - 1, for padded (bucket) prefills
            self.frames = torch.zeros(self.frames_per_replay, self.num_code_groups, **index)  # one replay

    def use_functions(
        self, layers: LayerFunctions = EAGER, sampling: SamplingFunctions = EAGER_SAMPLING
    ) -> None:
        """The decoder stacks' step function and the samplers' functions (compile.py: compiled or eager)."""
        self.talker.fns = self.code_predictor.fns = layers
        self.talker_sampler.fns = self.talker_sampler.warper.fns = self.code_sampler.warper.fns = sampling

    def prefill(self, embeds: torch.Tensor, last: torch.Tensor | None = None) -> None:
        """The prompt through the talker: sets past_hidden and the first c0 (talker.py for padded prompts)."""
        hidden, logits = self.talker.prefill(embeds, last)
        self.past_hidden.copy_(hidden)
        self.code0.copy_(self.talker_sampler(logits))

    def start(self, prefill: Prefill, sampling: SamplingParams) -> torch.Tensor:
        """Settings, counters and text track of one utterance; -> its prompt on the model's device and
        dtype."""
        to_model = dict(device=self.device, dtype=self.dtype)
        trailing = prefill.trailing_text_hidden.to(**to_model)[0, : self.max_seq_len]
        self.text_track[: trailing.shape[0]].copy_(trailing)
        self.tts_pad.copy_(prefill.tts_pad_embed.to(**to_model).view(-1))
        if prefill.text_complete:
            self.text_track[trailing.shape[0]].copy_(self.tts_pad)
            self.text_len.fill_(trailing.shape[0])
        else:  # rows are added as the text arrives (text_rows.py); until it ends, row t is read for frame t
            self.text_track[self.max_seq_len].copy_(self.tts_pad)
            self.text_len.fill_(self.max_seq_len)
        embeds = prefill.inputs_embeds.to(**to_model)
        self.prompt_len.fill_(embeds.shape[1])
        self.step.zero_()
        self.talker_sampler.set(sampling)
        self.code_sampler.set(sampling)
        self.talker_sampler.reset()
        return embeds
