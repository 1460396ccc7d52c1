"""The fused frame's checks on CPU, under Triton's interpreter (run by test_fused_frame.py in a child process
with TRITON_INTERPRET=1: the variable must be set before the kernels are defined, and would otherwise leak
into every kernel of the test session).

Prints one JSON object: per check its inputs and what it found; the parent asserts on it.
"""

from __future__ import annotations

import json
import os
import random
import sys

assert os.environ.get("TRITON_INTERPRET") == "1", "run by test_fused_frame.py under TRITON_INTERPRET=1"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import torch  # noqa: E402

from bench.gpu_parity import build_model, cast, synthetic_prefill  # noqa: E402
from bench.teacher_forced import random_codes, run_teacher_forced  # noqa: E402
from qwen3_tts_ros.engine.frame.fused_triton import FusedTritonFrame  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.frame.sampling import choose_token  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams  # noqa: E402


def greedy_frames(size: str, dtype_name: str, frames: int, prompt_len: int) -> dict:
    """Greedy codes of the reference frame and of the fused one, same weights and prompt."""
    dtype = getattr(torch, dtype_name)
    model = build_model(size, tiny=True, device="cpu").to(dtype)
    prefill = cast(synthetic_prefill(model, prompt_len, 5), dtype)
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )
    codes = {}
    for fused in (False, True):
        path = "fused-triton" if fused else "eager"
        generator = FrameGenerator(model, FrameOptions(max_seq_len=64, path=path))
        codes[fused] = torch.stack(list(generator.generate(prefill, sampling))).tolist()
        if fused:
            splits = generator.path.talker_stack.splits
    return dict(size=size, dtype=dtype_name, prompt_len=prompt_len, talker_splits=splits,
                reference=codes[False], fused=codes[True])  # fmt: skip


def sampler_cases(n: int) -> list[dict]:
    """The fused sampler against sampling.py's choose_token (+ process_scores for the talker) on the same
    logits and the same Exp(1) noise: the chosen ids must be the same."""
    model = build_model("0b6", tiny=True, device="cpu")
    generator = FrameGenerator(model, FrameOptions(max_seq_len=64, path="fused-triton"))
    fused: FusedTritonFrame = generator.path
    rng = random.Random(7)
    code_embedding = model.talker.code_predictor.model.codec_embedding[0].weight
    out = []
    for case in range(n):
        talker = case % 2 == 0
        sampler = generator.state.talker_sampler if talker else generator.state.code_sampler
        vocab = fused.talker_vocab if talker else fused.cp_vocab
        params = SamplingParams(
            do_sample=rng.random() < 0.8,
            temperature=rng.choice([0.5, 0.9, 1.0, 1.3]),
            top_k=rng.choice([0, 1, 5, 50, vocab, vocab + 3]),
            top_p=rng.choice([1.0, 0.95, 0.8, 0.3]),
            repetition_penalty=rng.choice([1.0, 1.05, 1.5]),
            min_new_tokens=rng.choice([0, 2]),
        )
        params = SamplingParams(
            **{**params.__dict__, "subtalker_dosample": params.do_sample, "subtalker_temperature":
               params.temperature, "subtalker_top_k": params.top_k, "subtalker_top_p": params.top_p}
        )  # fmt: skip
        sampler.set(params)
        g = torch.Generator().manual_seed(case)
        logits = torch.randn(vocab, generator=g) * rng.choice([1.0, 4.0])
        noise = torch.empty(vocab).exponential_(1, generator=g)
        if talker:
            sampler.reset()
            seen = torch.randint(0, vocab, (5,), generator=g)
            sampler.seen[0, seen] = True
            sampler.generated.fill_(rng.choice([0, 3]))
            scores = sampler.process(logits[None])
            warper = sampler.warper
            generated_before = int(sampler.generated)
        else:
            scores = logits[None]
            warper = sampler.warper
        t = warper.temperature
        expected = int(choose_token(scores, warper.do_sample, t.value, t.reciprocal, warper.top_k,
                                    warper.one_minus_top_p, noise[None]))  # fmt: skip
        code = torch.zeros(1, dtype=torch.long)
        fused._sample(logits.clone(), noise, code, warper, talker=talker,
                      embedding=None if talker else code_embedding)  # fmt: skip
        rec = dict(case=case, talker=talker, params=params.__dict__, expected=expected, got=int(code))
        if talker:
            rec["seen_marked"] = bool(sampler.seen[0, int(code)])
            rec["generated_counted"] = int(sampler.generated) == generated_before + 1
        out.append(rec)
    return out


def main() -> None:
    torch.manual_seed(0)
    result = dict(
        greedy=[
            greedy_frames("0b6", "float64", 3, 12),
            greedy_frames("1b7", "float64", 3, 40),  # positions past the first talker split
            greedy_frames("0b6", "float32", 2, 40),
        ],
        sampler=sampler_cases(24),
        # the fused frame's own logits at every step, fed random codes (bench/teacher_forced.py)
        teacher_forced=run_teacher_forced(
            "0b6", tiny=True, device="cpu", frames=3, prompt_len=12, codes=random_codes("0b6", True, 3, 5),
            reference_dtype="float64", dtypes=("float64",), paths=("fused",),
        ),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
