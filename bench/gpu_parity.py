"""Greedy code parity of our FrameGenerator (CUDA graphs) with qwen-tts's talker.generate on full-size models.

Random weights with the exact released architecture (0.6B / 1.7B, the method of shared/bench/anchors.py),
a synthetic prompt of P positions and trailing text, greedy decoding (do_sample=False,
subtalker_dosample=False, repetition penalty 1.05). EOS is kept out of both by min_new_tokens =
max_new_tokens = frames + 1 (transformers masks EOS until then; our sampler does the same), so both
produce exactly `frames` frames.
  float32: the codes must be identical.
  bfloat16: reports how many leading frames and what fraction of frames/tokens are identical (kernels
            differ: qwen-tts uses SDPA with enable_gqa and no mask, we fold query groups and mask a static
            cache, so bf16 rounding differs and greedy paths may diverge).
Also checks that CUDA-graph replay gives the same codes as our eager path on the same device.

    python bench/gpu_parity.py --sizes 0b6 1b7 --frames 100 --out parity.json          (GPU)
    python bench/gpu_parity.py --device cpu --tiny --frames 20 --out /tmp/parity.json  (logic check on CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.frame.prefill import Prefill  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats  # noqa: E402


def released_config(size: str):
    """Qwen3TTSConfig of the released 12 Hz Base model of `size` (as in its config.json)."""
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig

    from bench.full_size_checkpoint import released_config_dict

    return Qwen3TTSConfig(**released_config_dict(size, "base"))


def tiny_config(size: str):
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig

    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import tiny_config_dict

    return Qwen3TTSConfig(**tiny_config_dict("base", size))


def build_model(size: str, tiny: bool, device: str):
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration

    cfg = tiny_config(size) if tiny else released_config(size)
    for c in (cfg, cfg.talker_config, cfg.talker_config.code_predictor_config):
        c._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3TTSForConditionalGeneration(cfg)
    return model.to(torch.float32).eval()


def synthetic_prefill(model, prompt_len: int, text_len: int) -> Prefill:
    """Like anchors.py `inputs`: random prompt, trailing text and pad embeddings (scale 0.05)."""
    hidden = model.config.talker_config.hidden_size
    device = model.talker.codec_head.weight.device
    g = torch.Generator(device=device).manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, device=device, generator=g, dtype=torch.float32) * 0.05

    return Prefill(
        inputs_embeds=rand(1, prompt_len, hidden),
        trailing_text_hidden=rand(1, text_len, hidden),
        tts_pad_embed=rand(1, 1, hidden),
        ref_code=None,
    )


def cast(prefill: Prefill, dtype) -> Prefill:
    return Prefill(
        prefill.inputs_embeds.to(dtype),
        prefill.trailing_text_hidden.to(dtype),
        prefill.tts_pad_embed.to(dtype),
        None,
    )


def qwen_tts_codes(model, prefill: Prefill, frames: int) -> torch.Tensor:
    """(frames, 16) greedy codes from qwen-tts's talker.generate (HF generate + nested generate)."""
    tc = model.config.talker_config
    suppress = [i for i in range(tc.vocab_size - 1024, tc.vocab_size) if i != tc.codec_eos_token_id]
    with torch.no_grad():
        out = model.talker.generate(
            inputs_embeds=prefill.inputs_embeds,
            attention_mask=torch.ones(
                prefill.inputs_embeds.shape[:2], dtype=torch.long, device=prefill.inputs_embeds.device
            ),
            trailing_text_hidden=prefill.trailing_text_hidden,
            tts_pad_embed=prefill.tts_pad_embed,
            max_new_tokens=frames + 1,
            min_new_tokens=frames + 1,
            do_sample=False,
            top_k=50,
            top_p=1.0,
            temperature=0.9,
            repetition_penalty=1.05,
            eos_token_id=tc.codec_eos_token_id,
            suppress_tokens=suppress,
            subtalker_dosample=False,
            subtalker_top_k=50,
            subtalker_top_p=1.0,
            subtalker_temperature=0.9,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
    return torch.stack([h[-1] for h in out.hidden_states if h[-1] is not None], dim=1)[0].cpu()


def our_codes(generator: FrameGenerator, prefill: Prefill, frames: int) -> tuple[torch.Tensor, StreamStats]:
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )
    stats = StreamStats()
    codes = torch.stack(list(generator.generate(prefill, sampling, stats=stats))).cpu()
    return codes, stats


def compare(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    n = min(len(ours), len(theirs))
    same_frames = (ours[:n] == theirs[:n]).all(dim=1)
    leading = n if bool(same_frames.all()) else int((~same_frames).nonzero()[0, 0])
    return dict(
        frames_ours=len(ours),
        frames_qwen_tts=len(theirs),
        identical=bool(len(ours) == len(theirs) and same_frames.all()),
        leading_identical_frames=leading,
        identical_frame_fraction=round(float(same_frames.float().mean()), 4) if n else 0.0,
        identical_token_fraction=round(float((ours[:n] == theirs[:n]).float().mean()), 4) if n else 0.0,
    )


def run_parity(
    size: str,
    *,
    tiny: bool,
    device: str,
    frames: int,
    prompt_len: int = 100,
    text_len: int = 30,
    dtypes=("float32", "bfloat16"),
    max_seq_len: int = 512,
    paths=("reference",),
) -> dict:
    model = build_model(size, tiny, device)
    base_prefill = synthetic_prefill(model, prompt_len, text_len)
    result = {"size": size, "tiny": tiny, "device": device, "frames": frames, "prompt_len": prompt_len}
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(torch.device(device))
    theirs = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        model = model.to(dtype)
        prefill = cast(base_prefill, dtype)
        entry = {}
        t0 = time.perf_counter()
        theirs[dtype_name] = qwen_tts_codes(model, prefill, frames)
        entry["qwen_tts_s"] = round(time.perf_counter() - t0, 3)
        if dtype_name != "float32" and "float32" in theirs:  # how far each dtype run follows float32
            entry["qwen_tts_vs_qwen_tts_float32"] = compare(theirs[dtype_name], theirs["float32"])
        for path in paths:
            entry[path] = run_path(model, prefill, frames, max_seq_len, path == "fused", theirs, dtype_name)
        result[dtype_name] = entry
    return result


def run_path(model, prefill, frames, max_seq_len, fused, theirs, dtype_name) -> dict:
    """One decode path (the reference frame or the fused one) against qwen-tts in the same dtype (and in
    float32 where that ran), and its CUDA-graph replay against its own uncaptured run."""
    path = "fused-triton" if fused else "auto"
    generator = FrameGenerator(model, FrameOptions(max_seq_len=max_seq_len, path=path))
    entry = {"capture_s": round(generator.capture(), 3)}
    ours, stats = our_codes(generator, prefill, frames)
    entry.update(compare(ours, theirs[dtype_name]))
    if dtype_name != "float32" and "float32" in theirs:
        entry["vs_qwen_tts_float32"] = compare(ours, theirs["float32"])
    entry["ours_ms_per_frame_median"] = round(sorted(stats.frame_ms)[len(stats.frame_ms) // 2], 3)
    entry["ours_prefill_ms"] = round(stats.prefill_ms, 3)
    if generator.use_cuda_graphs:  # graph replay must equal our eager path on the same device
        eager = FrameGenerator(model, FrameOptions(max_seq_len=max_seq_len, use_cuda_graphs=False, path=path))
        entry["graphs_equal_eager"] = bool(torch.equal(our_codes(eager, prefill, frames)[0], ours))
    del generator
    if next(model.parameters()).is_cuda:
        torch.cuda.empty_cache()
    return entry


def model_arguments(description: str) -> argparse.ArgumentParser:
    """The options this script shares with teacher_forced.py: which models, frames, prompt, dtypes, output."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny test widths instead of the released configs"
    )
    parser.add_argument("--sizes", nargs="+", default=["0b6", "1b7"], choices=["0b6", "1b7"])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--prompt-len", type=int, default=100)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--out", required=True, help="JSON output path")
    return parser


def write_results(results: list[dict], out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)


def main(argv=None) -> int:
    parser = model_arguments(__doc__)
    parser.add_argument(
        "--paths", nargs="+", default=["reference", "fused"], choices=["reference", "fused"],
        help="decode paths: the reference frame (layer functions) and the fused Triton frame",
    )
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        res = run_parity(
            size,
            tiny=args.tiny,
            device=args.device,
            frames=args.frames,
            prompt_len=args.prompt_len,
            dtypes=args.dtypes,
            paths=args.paths,
        )
        print(json.dumps(res), flush=True)
        results.append(res)
    write_results(results, args.out)
    float32_ok = all(r["float32"][p]["identical"] for r in results if "float32" in r for p in args.paths)
    return 0 if float32_ok else 1


if __name__ == "__main__":
    sys.exit(main())
