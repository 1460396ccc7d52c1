"""Where a frame's time goes: ms/frame and kernels/frame of the FrameGenerator variants on one GPU.

Full-size random model (released config), bf16, synthetic 100-position prompt, sampling on, EOS kept out
(min_new_tokens), CUDA graphs on. For each variant (the reference frame with torch.compile'd layer
functions; the fused Triton frame): capture seconds, ms/frame median and p95 over `--frames` frames, the
number of GPU kernels one frame launches and its 25 costliest kernel names (torch.profiler over uncaptured
frames). Prints one JSON line per (size, variant).

    python bench/profile_frame.py --sizes 0b6 1b7 --frames 200 --out profile.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.gpu_parity import build_model, cast, synthetic_prefill  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats  # noqa: E402


def _sampling(frames: int) -> SamplingParams:
    return SamplingParams(
        do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
        max_new_tokens=frames + 1, min_new_tokens=frames + 1,
    )  # fmt: skip


def kernels_per_frame(model, prefill, path: str) -> tuple[int, list[dict]]:
    """GPU kernels of one frame, counted on the uncaptured path; and per kernel name its count and device
    microseconds per frame (largest first)."""
    generator = FrameGenerator(
        model, FrameOptions(use_cuda_graphs=False, path=path)
    )
    list(generator.generate(prefill, _sampling(3)))  # compile + warm up
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        list(generator.generate(prefill, _sampling(6)))
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    # 6 frames = 5 talker steps + 6 code-predictor frames, plus the prefill; count per frame by difference
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof2:
        list(generator.generate(prefill, _sampling(2)))
    kernels2 = [e for e in prof2.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for events, sign in ((kernels, 1), (kernels2, -1)):
        for e in events:
            entry = by_name.setdefault(e.name[:80], [0, 0.0])
            entry[0] += sign
            entry[1] += sign * e.time_range.elapsed_us()
    table = sorted(
        (dict(kernel=k, per_frame=round(n / 4, 2), us_per_frame=round(us / 4, 1))
         for k, (n, us) in by_name.items()),
        key=lambda r: -r["us_per_frame"],
    )
    return (len(kernels) - len(kernels2)) // 4, table[:25]


def run(size: str, frames: int) -> list[dict]:
    model = build_model(size, tiny=False, device="cuda").to(torch.bfloat16)
    prefill = cast(synthetic_prefill(model, 100, 30), torch.bfloat16)
    records = []
    for path in ("compiled", "fused-triton"):
        generator = FrameGenerator(model, FrameOptions(path=path))
        capture_s = generator.capture()
        list(generator.generate(prefill, _sampling(10)))
        stats = StreamStats()
        list(generator.generate(prefill, _sampling(frames), stats=stats))
        frame_ms = sorted(stats.frame_ms[1:])
        rec = dict(
            size=size,
            frame_path=generator.path.name,
            capture_s=round(capture_s, 2),
            prefill_ms=round(stats.prefill_ms, 2),
            frames=stats.frames,
            ms_per_frame_median=round(statistics.median(frame_ms), 3),
            ms_per_frame_p95=round(frame_ms[int(0.95 * (len(frame_ms) - 1))], 3),
            gpu=torch.cuda.get_device_name(0),
        )
        count, table = kernels_per_frame(model, prefill, path)
        rec["kernels_per_frame"], rec["kernel_table"] = count, table
        print(json.dumps(rec), flush=True)
        records.append(rec)
        del generator
        torch.cuda.empty_cache()
    return records


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["0b6", "1b7"])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    records = [rec for size in args.sizes for rec in run(size, args.frames)]
    with open(args.out, "w") as f:
        json.dump(dict(torch=torch.__version__, records=records), f, indent=1)


if __name__ == "__main__":
    main()
