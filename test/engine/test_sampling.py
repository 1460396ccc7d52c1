"""Our on-device logits processing equals transformers' processors as qwen-tts configures them."""

import itertools
import random

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from qwen3_tts_ros.engine.frame.sampling import CodeSampler, TalkerSampler
from qwen3_tts_ros.engine.types import SamplingParams

VOCAB = 64 + 1024  # tiny talker: 64 audio codes + 1024 control ids
EOS = 64 + 102


def hf_warpers(temperature, top_k, top_p):
    """The warpers transformers adds for do_sample=True (see GenerationMixin._get_logits_processor)."""
    out = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p))
    return out


def hf_talker_processors(penalty, min_new_tokens):
    suppress = [i for i in range(VOCAB - 1024, VOCAB) if i != EOS]
    return [
        RepetitionPenaltyLogitsProcessor(penalty=penalty),
        MinNewTokensLengthLogitsProcessor(
            prompt_length_to_skip=0, min_new_tokens=min_new_tokens, eos_token_id=EOS
        ),
        SuppressTokensLogitsProcessor(suppress),
    ]


def random_logits(rng, vocab):
    scale = rng.choice([0.5, 3.0, 20.0])
    logits = torch.randn(1, vocab, generator=torch.Generator().manual_seed(rng.randrange(1 << 30))) * scale
    logits[0, EOS if vocab > EOS else 0] += rng.choice([0.0, 10.0])  # sometimes EOS would win
    return logits


CASES = list(
    itertools.product(
        [1.0, 1.05, 0.8, 1.7], [0.3, 0.9, 1.0, 1.4], [0, 1, 7, 50, 5000], [1.0, 0.95, 0.5, 0.01]
    )
)


@pytest.mark.parametrize("case", range(0, len(CASES), 3))
def test_talker_processing_matches_transformers(case):
    penalty, temperature, top_k, top_p = CASES[case]
    rng = random.Random(case)
    sampler = TalkerSampler(VOCAB, EOS, torch.device("cpu"))
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=penalty)
    sampler.set(params)
    for trial in range(6):
        n_generated = rng.choice([0, 1, 2, 3, 30])
        history = [rng.choice([rng.randrange(64), EOS, rng.randrange(VOCAB)]) for _ in range(n_generated)]
        history += history[: n_generated // 3]  # repeats
        history = history[:n_generated]
        input_ids = torch.tensor([history], dtype=torch.long).view(1, -1)
        logits = random_logits(rng, VOCAB)

        sampler.reset()
        for token in history:
            sampler.seen[0, token] = True
        sampler.generated.fill_(len(history))

        hf_processed = LogitsProcessorList(hf_talker_processors(penalty, params.min_new_tokens))(
            input_ids, logits.clone()
        )
        ours_processed = sampler.process(logits.clone())
        assert torch.equal(ours_processed, hf_processed), (trial, history)

        hf_warped = LogitsProcessorList(hf_warpers(temperature, top_k, top_p))(
            input_ids, hf_processed.clone()
        )
        ours_warped = sampler.warper.warp(ours_processed.clone())
        torch.testing.assert_close(ours_warped.softmax(-1), hf_warped.softmax(-1), rtol=0, atol=0)


@pytest.mark.parametrize("case", range(1, len(CASES), 5))
def test_code_predictor_processing_matches_transformers(case):
    _, temperature, top_k, top_p = CASES[case]
    rng = random.Random(1000 + case)
    sampler = CodeSampler(64, torch.device("cpu"))
    sampler.set(
        SamplingParams(subtalker_temperature=temperature, subtalker_top_k=top_k, subtalker_top_p=top_p)
    )
    for _ in range(6):
        logits = random_logits(rng, 64)
        hf = LogitsProcessorList(hf_warpers(temperature, top_k, top_p))(
            torch.zeros(1, 0, dtype=torch.long), logits
        )
        ours = sampler.warper.warp(logits.clone())
        torch.testing.assert_close(ours.softmax(-1), hf.softmax(-1), rtol=0, atol=0)


def test_greedy_is_argmax_of_processed_logits():
    sampler = TalkerSampler(VOCAB, EOS, torch.device("cpu"))
    sampler.set(SamplingParams(do_sample=False, repetition_penalty=1.05))
    rng = random.Random(7)
    for step in range(20):
        logits = random_logits(rng, VOCAB)
        hf = LogitsProcessorList(hf_talker_processors(1.05, 2))
        history = torch.nonzero(sampler.seen[0]).view(1, -1)  # order irrelevant for the penalty
        expected = hf(history, logits.clone()).argmax(-1)
        token = sampler(logits)
        assert token.item() == expected.item()
        assert token.item() != EOS or step >= 2  # EOS is masked for the first min_new_tokens ids
        assert token.item() < 64 or token.item() == EOS  # control ids are suppressed
    assert sampler.generated.item() == 20


def test_sampling_follows_distribution_and_fixed_seed_repeats():
    sampler = CodeSampler(5, torch.device("cpu"))
    sampler.set(SamplingParams(subtalker_temperature=1.0, subtalker_top_k=50, subtalker_top_p=1.0))
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1, 0.0]]))
    torch.manual_seed(123)
    draws = torch.stack([sampler(logits) for _ in range(4000)]).view(-1)
    freq = torch.bincount(draws, minlength=5).float() / len(draws)
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.25, 0.15, 0.1, 0.0]), atol=0.03, rtol=0)
    torch.manual_seed(123)
    again = torch.stack([sampler(logits) for _ in range(4000)]).view(-1)
    assert torch.equal(draws, again)


def test_settings_change_without_rebuilding():
    sampler = CodeSampler(5, torch.device("cpu"))
    logits = torch.tensor([[3.0, 2.9, 0.0, -1.0, -2.0]])
    sampler.set(SamplingParams(subtalker_dosample=False))
    assert all(sampler(logits).item() == 0 for _ in range(20))
    sampler.set(SamplingParams(subtalker_dosample=True, subtalker_top_k=2, subtalker_temperature=1.0))
    torch.manual_seed(0)
    seen = {sampler(logits).item() for _ in range(200)}
    assert seen == {0, 1}
