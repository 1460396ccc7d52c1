"""The compiled samplers (compile.sampling_functions(True), what CUDA runs) compile once per logits shape,
whatever the strides of the logits handed in: an uncaptured prefill's logits are the last row of a
(1, P, V) tensor, whose stride changes with the prompt length P (the GPU endurance run recompiled per prompt
length until dynamo's recompile limit stopped it). Runs torch.compile on the CPU (needs a C++ compiler)."""

import shutil

import pytest
import torch

from qwen3_tts_ros.engine.frame.compile import sampling_functions
from qwen3_tts_ros.engine.frame.sampling import EAGER_SAMPLING, TalkerSampler
from qwen3_tts_ros.engine.types import SamplingParams

pytestmark = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                reason="inductor on the CPU needs a C++ compiler")

VOCAB, EOS = 96, 90


def test_compiled_talker_sampler_ignores_the_stride_of_the_logits():
    from torch._dynamo.utils import counters

    compiled = TalkerSampler(VOCAB, EOS, torch.device("cpu"), sampling_functions(True))
    eager = TalkerSampler(VOCAB, EOS, torch.device("cpu"), EAGER_SAMPLING)
    greedy = SamplingParams(do_sample=False, repetition_penalty=1.05, max_new_tokens=8)
    generator = torch.Generator().manual_seed(0)
    compiles = []
    for sampler in (compiled, eager):
        sampler.set(greedy)
        sampler.reset()
    for prompt_len in (5, 9, 17, 33, 65):
        logits = torch.randn(1, prompt_len, VOCAB, generator=generator)[:, -1]  # stride (P * V, 1)
        assert torch.equal(compiled(logits), eager(logits))
        compiles.append(counters["stats"]["unique_graphs"])
    assert compiles[1:] == compiles[:1] * (len(compiles) - 1), f"recompiled for new strides: {compiles}"
