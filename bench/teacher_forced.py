"""Per-step logits error under teacher forcing: each decode path against qwen-tts in float32.

Every path is fed the same codes (by default qwen-tts's own float32 greedy codes): at each of the
1 + 16 * frames token choices (prefill -> c0, then per frame c1..c15 from the code predictor and the next
c0 from the talker) its raw logits are recorded, then the forced code is made the greedy choice (its logit
raised far above the rest; the recorded row is the one before that). So every path sees the same history
and step j's error is the error of step j alone, not of a diverged history. Forcing is checked: a run whose
codes are not the forced ones is an error.

Paths: qwen-tts (forward hooks on its codec_head and code-predictor lm_heads, torch's own hook API), our
reference frame (its samplers wrapped) and the fused frame (its `_sample` wrapped), the last two uncaptured,
so that Python runs between the kernels. Error per choice: max |logit - float32 qwen-tts logit| over the
vocabulary; reported as median / p99 / max over the choices, the talker's (c0) and the code predictor's
(c1..c15) apart, with the float32 reference logits' spread (their standard deviation) beside.

    python bench/teacher_forced.py --sizes 0b6 1b7 --frames 100 --out teacher_forced.json     (GPU)
    python bench/teacher_forced.py --device cpu --tiny --frames 4 --out /tmp/tf.json          (CPU check)
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.gpu_parity import (  # noqa: E402
    build_model,
    cast,
    model_arguments,
    qwen_tts_codes,
    released_config,
    synthetic_prefill,
    tiny_config,
    write_results,
)
from qwen3_tts_ros.engine.frame.fused_triton import FusedTritonFrame  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams  # noqa: E402

# Added to the largest logit for the forced code: far above any logit a random or trained model gives
# (|logit| < ~100), still exact in bf16 steps of 64 and unchanged in order by the 1.05 repetition penalty.
FORCING_MARGIN = 1.0e4


class Forcing:
    """The forced codes in choice order and the raw logits recorded at each choice."""

    def __init__(self, codes: torch.Tensor):
        """codes (frames, 16): choice 0 is codes[0, 0] (the prefill's c0), then per frame t codes[t, 1:]
        and codes[t + 1, 0]; the last frame's following c0 is not forced (not recorded either)."""
        self.sequence = codes.reshape(-1).tolist()
        self.logits: list[torch.Tensor] = []

    def choose(self, logits: torch.Tensor) -> torch.Tensor:
        """Record the last row of `logits` (..., V) in float64 (exact for every dtype); return a copy in
        which the next forced code is that row's largest logit (past the forced sequence: unchanged)."""
        vocab = logits.shape[-1]
        row = logits.detach().reshape(-1, vocab)[-1].to(torch.float64)
        i = len(self.logits)
        forced = logits.clone()
        if i < len(self.sequence):
            self.logits.append(row.clone())
            forced.reshape(-1, vocab)[-1, self.sequence[i]] = row.max() + FORCING_MARGIN
        return forced

    def recorded(self) -> list[torch.Tensor]:
        """The recorded rows on the CPU (a list: the talker's and the code predictor's vocabularies
        differ)."""
        return [row.cpu() for row in self.logits]


class _ForcedSampler:
    """A sampler of the reference frame whose input logits pass through Forcing.choose first."""

    def __init__(self, sampler, forcing: Forcing):
        self._sampler, self._forcing = sampler, forcing

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return self._sampler(self._forcing.choose(logits))

    def __getattr__(self, name):  # set / reset / the state tensors: the wrapped sampler's own
        return getattr(self._sampler, name)


def random_codes(size: str, tiny: bool, frames: int, seed: int = 0) -> torch.Tensor:
    """(frames, 16) codes drawn uniformly from the codebooks: a history no greedy run of either path would
    follow by itself, so a run that ignored the forcing is caught."""
    cfg = tiny_config(size) if tiny else released_config(size)
    codebook = cfg.talker_config.code_predictor_config.vocab_size  # c0's codec ids are the same range
    return torch.randint(0, codebook, (frames, 16), generator=torch.Generator().manual_seed(seed))


def qwen_tts_forced(model, prefill, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """qwen-tts talker.generate with its choices forced to `codes`: (its codes, its recorded logits)."""
    forcing = Forcing(codes)

    def hook(module, args, output):
        return forcing.choose(output)

    talker = model.talker
    heads = [talker.codec_head, *talker.code_predictor.lm_head]
    handles = [head.register_forward_hook(hook) for head in heads]
    try:
        got = qwen_tts_codes(model, prefill, len(codes))
    finally:
        for handle in handles:
            handle.remove()  # our reference frame calls the same lm_head modules
    return got, forcing.recorded()


def ours_forced(model, prefill, codes: torch.Tensor, fused: bool, max_seq_len: int):
    """Our frame (reference or fused), uncaptured, forced to `codes`: (its codes, its recorded logits)."""
    forcing = Forcing(codes)
    path = "fused-triton" if fused else "eager"
    generator = FrameGenerator(model, FrameOptions(max_seq_len=max_seq_len, use_cuda_graphs=False, path=path))
    state = generator.state
    state.talker_sampler = _ForcedSampler(state.talker_sampler, forcing)  # the prefill's c0 too
    state.code_sampler = _ForcedSampler(state.code_sampler, forcing)
    if fused:
        frame = generator.path
        sample = frame._sample

        def forced_sample(logits, *args, **kwargs):
            logits.copy_(forcing.choose(logits))  # the kernel reads the forced copy from the same buffer
            return sample(logits, *args, **kwargs)

        frame._sample = forced_sample
    frames = len(codes)
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )
    got = torch.stack(list(generator.generate(prefill, sampling))).cpu()
    return got, forcing.recorded()


def errors(logits: list[torch.Tensor], reference: list[torch.Tensor]) -> dict:
    """Per-choice max |difference| over the vocabulary, summarised for the talker and the code predictor."""
    n = min(len(logits), len(reference))
    per_choice = torch.stack([(ours - ref).abs().max() for ours, ref in zip(logits[:n], reference[:n])])
    talker = torch.arange(n) % 16 == 0  # choice 0, 16, 32, ...: a c0

    def summary(values: torch.Tensor) -> dict:
        if not len(values):
            return {}
        values = values.sort().values.double()
        return dict(
            median=float(values[len(values) // 2]),
            p99=float(values[min(len(values) - 1, int(0.99 * len(values)))]),
            max=float(values[-1]),
            choices=len(values),
        )

    return dict(talker=summary(per_choice[talker]), code_predictor=summary(per_choice[~talker]))


def run_teacher_forced(
    size: str,
    *,
    tiny: bool,
    device: str,
    frames: int,
    prompt_len: int = 100,
    text_len: int = 30,
    dtypes=("float32", "bfloat16"),
    paths=("reference", "fused"),
    max_seq_len: int = 512,
    codes: torch.Tensor | None = None,
    reference_dtype: str = "float32",
) -> dict:
    """codes: the (frames, 16) codes to force; None: qwen-tts's greedy codes in reference_dtype.

    The model is cast in place from one dtype to the next, so `dtypes` go from more to fewer bits, none
    with more bits than reference_dtype (a cast back would not restore the rounded weights)."""
    bits = [torch.finfo(getattr(torch, name)).bits for name in (reference_dtype, *dtypes)]
    if bits != sorted(bits, reverse=True):
        raise ValueError(f"dtypes must not gain bits after {reference_dtype}: {dtypes}")
    model = build_model(size, tiny, device).to(getattr(torch, reference_dtype))
    base_prefill = cast(synthetic_prefill(model, prompt_len, text_len), getattr(torch, reference_dtype))
    if codes is None:
        codes = qwen_tts_codes(model, base_prefill, frames)
    codes = codes[:frames]
    result = {"size": size, "tiny": tiny, "device": device, "frames": len(codes), "prompt_len": prompt_len,
              "reference": f"qwen-tts {reference_dtype}"}  # fmt: skip
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(torch.device(device))
    got, reference = qwen_tts_forced(model, base_prefill, codes)
    if not torch.equal(got, codes):
        raise RuntimeError(f"qwen-tts {reference_dtype} did not follow the forced codes")
    talker = torch.arange(len(reference)) % 16 == 0
    spread = torch.stack([row.std() for row in reference])
    size = torch.stack([row.abs().max() for row in reference])
    result["reference_logits_std"] = dict(talker=float(spread[talker].median()),
                                          code_predictor=float(spread[~talker].median()))  # fmt: skip
    result["reference_logits_max_abs"] = dict(talker=float(size[talker].max()),
                                              code_predictor=float(size[~talker].max()))  # fmt: skip
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        model = model.to(dtype)
        prefill = cast(base_prefill, dtype)
        entry = {}
        for name in ("qwen_tts", *paths):
            if name == "qwen_tts":
                got, logits = qwen_tts_forced(model, prefill, codes)
            else:
                got, logits = ours_forced(model, prefill, codes, name == "fused", max_seq_len)
            if not torch.equal(got, codes):
                raise RuntimeError(f"{name} ({dtype_name}) did not follow the forced codes")
            entry[name] = errors(logits, reference)
        result[dtype_name] = entry
    return result


def main(argv=None) -> int:
    parser = model_arguments(__doc__)
    parser.add_argument("--paths", nargs="+", default=None, choices=["reference", "fused"],
                        help="our decode paths (default: both where the fused one can run)")  # fmt: skip
    args = parser.parse_args(argv)
    paths = args.paths
    if paths is None:
        fused_runs = FusedTritonFrame.unavailable(torch.device(args.device)) is None
        paths = ["reference"] + (["fused"] if fused_runs else [])
    results = []
    for size in args.sizes:
        res = run_teacher_forced(size, tiny=args.tiny, device=args.device, frames=args.frames,
                                 prompt_len=args.prompt_len, dtypes=args.dtypes, paths=paths)  # fmt: skip
        print(json.dumps(res), flush=True)
        results.append(res)
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
