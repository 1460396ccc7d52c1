"""On-device token selection with qwen-tts's logits processing, settings held in device tensors.

Talker (codebook 0), as transformers builds it for qwen-tts's `talker.generate`:
  RepetitionPenalty(over the codebook-0 ids generated so far) -> MinNewTokens(EOS masked until
  `min_new_tokens` ids were generated) -> SuppressTokens(top 1024 control ids except EOS)
  -> greedy: argmax; sampling: Temperature -> TopK -> TopP -> sample.
Code predictor (codebooks 1..15): greedy argmax of the raw logits, or Temperature -> TopK -> TopP -> sample
with the subtalker_* settings.

Every setting lives in a 0-d device tensor and the code has no data-dependent Python branches, so one
captured CUDA graph serves any settings: call `set(...)` between generations. Sampling draws
`argmax(probs / Exp(1) noise)`, which is a draw from `probs` (what torch.multinomial does for one sample)
and is capturable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ..types import SamplingParams


def divide(x: torch.Tensor, value: torch.Tensor, reciprocal: torch.Tensor) -> torch.Tensor:
    """x / value as transformers computes it: it divides by a Python float, which on CUDA torch turns into
    a multiplication by the float32 reciprocal and on CPU stays a division. Same bits as transformers."""
    return x * reciprocal if x.is_cuda else x / value


def process_scores(
    scores, seen, penalty_factor, penalty_value, penalty_reciprocal, eos_mask, generated, min_new_tokens,
    suppress_mask,
):  # fmt: skip
    """Talker logits processing: repetition penalty over `seen` ids -> EOS masked until min_new_tokens ids
    -> control ids suppressed (EOS excepted). (1, V) float32 -> (1, V) float32."""
    divided = divide(scores, penalty_value, penalty_reciprocal)
    penalized = torch.where(scores < 0, scores * penalty_factor, divided)
    scores = torch.where(seen, penalized, scores)
    scores = scores.masked_fill(eos_mask & (generated < min_new_tokens), float("-inf"))
    return scores.masked_fill(suppress_mask, float("-inf"))


def warp_scores(scores, temperature_value, temperature_reciprocal, top_k, one_minus_top_p):
    """Temperature -> top-k -> top-p (transformers' warpers) on (1, V) float32; -inf where filtered."""
    scores = divide(scores, temperature_value, temperature_reciprocal)
    kth = scores.sort(dim=-1, descending=True).values.gather(-1, (top_k - 1).view(1, 1))
    scores = scores.masked_fill(scores < kth, float("-inf"))
    sorted_scores, order = scores.sort(dim=-1)
    remove = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= one_minus_top_p
    remove[..., -1:] = False  # keep at least one token
    return scores.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def choose_token(scores, do_sample, temperature_value, temperature_reciprocal, top_k, one_minus_top_p, noise):
    """(1, V) processed logits -> (1,) int64: argmax, or a draw from the warped distribution.

    noise: Exp(1) samples of the same shape (drawn outside, eagerly: the RNG stays torch's own, which CUDA
    graphs replay correctly); argmax(probs / noise) is a draw from probs. The clamp keeps a (rare,
    backend-dependent) 0 draw from giving 0/0 = NaN, which argmax would pick even for a filtered token.
    """
    greedy = scores.argmax(dim=-1)
    probs = warp_scores(scores, temperature_value, temperature_reciprocal, top_k, one_minus_top_p).softmax(-1)
    sampled = (probs / noise.clamp_min(torch.finfo(probs.dtype).tiny)).argmax(dim=-1)
    return torch.where(do_sample, sampled, greedy)


class SamplingFunctions(NamedTuple):
    """The pure sampling functions the samplers call: eager, or compiled (compile.py)."""

    process: Callable = process_scores
    choose: Callable = choose_token


EAGER_SAMPLING = SamplingFunctions()


class _Divisor:
    """A 0-d divisor tensor and its float32 reciprocal (see `divide`)."""

    def __init__(self, device):
        self.value = torch.ones((), device=device, dtype=torch.float32)
        self.reciprocal = torch.ones((), device=device, dtype=torch.float32)

    def set(self, value: float) -> None:
        v = torch.tensor(value, dtype=torch.float32)
        self.value.fill_(float(v))  # float32-exact Python floats: no cross-device tensor fill
        self.reciprocal.fill_(float(1.0 / v))  # float32 reciprocal, as CUDA's div-by-scalar computes it

    def divide(self, x: torch.Tensor) -> torch.Tensor:
        return divide(x, self.value, self.reciprocal)


class Warper:
    """Temperature -> top-k -> top-p -> greedy or sampled choice, with settings in device tensors."""

    def __init__(self, vocab_size: int, device, fns: SamplingFunctions = EAGER_SAMPLING):
        self.vocab_size = vocab_size
        self.fns = fns
        self.do_sample = torch.ones((), device=device, dtype=torch.bool)
        self.temperature = _Divisor(device)
        self.top_k = torch.full((), vocab_size, device=device, dtype=torch.long)
        self.one_minus_top_p = torch.zeros((), device=device, dtype=torch.float32)

    def set(self, do_sample: bool, temperature: float, top_k: int, top_p: float) -> None:
        self.do_sample.fill_(bool(do_sample))
        self.temperature.set(temperature)
        # transformers: top_k 0/None disables the filter; k > vocab keeps everything.
        k = self.vocab_size if not top_k or top_k <= 0 else min(int(top_k), self.vocab_size)
        self.top_k.fill_(k)
        # computed in double like transformers' `1 - top_p`, then compared in float32
        self.one_minus_top_p.fill_(1.0 - float(top_p))

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        """(1, V) float32 processed logits -> warped logits (-inf where filtered)."""
        t = self.temperature
        return warp_scores(scores, t.value, t.reciprocal, self.top_k, self.one_minus_top_p)

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """(1, V) processed logits -> (1,) int64 token: argmax, or a sample of the warped distribution."""
        scores = _row_major(scores)
        noise = torch.empty_like(scores).exponential_(1)
        t = self.temperature
        return self.fns.choose(
            scores, self.do_sample, t.value, t.reciprocal, self.top_k, self.one_minus_top_p, noise
        )


def _row_major(scores: torch.Tensor) -> torch.Tensor:
    """(1, V) scores with strides (V, 1). The compiled functions are specialised on strides, even of size-1
    dimensions, and an uncaptured prefill's logits are the last row of a (1, P, V) tensor: stride (P * V, 1),
    which `contiguous()` leaves as it is. Without this copy every new prompt length recompiled (hundreds of
    ms to first audio) until dynamo's recompile limit made it a hard error (a GPU endurance run died after
    ~60 utterances)."""
    if scores.stride() == (scores.shape[1], 1):
        return scores
    return scores.clone(memory_format=torch.contiguous_format)


class TalkerSampler:
    """Codebook-0 selection with repetition penalty, min-new-tokens and control-id suppression."""

    def __init__(self, vocab_size: int, eos_token_id: int, device, fns: SamplingFunctions = EAGER_SAMPLING):
        self.fns = fns
        self.warper = Warper(vocab_size, device, fns)
        ids = torch.arange(vocab_size, device=device)
        self.eos_mask = (ids == eos_token_id)[None]
        self.suppress_mask = ((ids >= vocab_size - 1024) & (ids != eos_token_id))[None]
        self.penalty = _Divisor(device)
        self.penalty_factor = torch.ones((), device=device, dtype=torch.float32)
        self.min_new_tokens = torch.zeros((), device=device, dtype=torch.long)
        self.seen = torch.zeros(1, vocab_size, device=device, dtype=torch.bool)  # generated ids so far
        self.generated = torch.zeros((), device=device, dtype=torch.long)  # how many ids so far

    def set(self, params: SamplingParams) -> None:
        self.warper.set(params.do_sample, params.temperature, params.top_k, params.top_p)
        self.penalty.set(params.repetition_penalty)
        self.penalty_factor.fill_(float(params.repetition_penalty))
        self.min_new_tokens.fill_(int(params.min_new_tokens))

    def reset(self) -> None:
        self.seen.zero_()
        self.generated.zero_()

    def process(self, scores: torch.Tensor) -> torch.Tensor:
        """(1, V) float32 logits -> logits after repetition penalty, min-new-tokens and suppression."""
        scores = _row_major(scores)
        return self.fns.process(
            scores, self.seen, self.penalty_factor, self.penalty.value, self.penalty.reciprocal,
            self.eos_mask, self.generated, self.min_new_tokens, self.suppress_mask,
        )  # fmt: skip

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, V) logits -> (1,) int64 token; records it for the repetition penalty."""
        token = self.warper.choose(self.process(logits.to(torch.float32)))
        self.seen.scatter_(1, token[:, None], True)
        self.generated.add_(1)
        return token


class CodeSampler:
    """Codebooks 1..15 selection with the subtalker_* settings (no penalty, no suppression)."""

    def __init__(self, vocab_size: int, device, fns: SamplingFunctions = EAGER_SAMPLING):
        self.warper = Warper(vocab_size, device, fns)

    def set(self, params: SamplingParams) -> None:
        self.warper.set(
            params.subtalker_dosample,
            params.subtalker_temperature,
            params.subtalker_top_k,
            params.subtalker_top_p,
        )

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, V) logits of one codebook -> (1,) int64 token."""
        return self.warper.choose(logits.to(torch.float32))
