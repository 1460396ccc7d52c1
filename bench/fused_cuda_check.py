"""The fused CUDA C++ frame on full-size random models (GPU): build time, float32 greedy parity with qwen-tts,
graph replay == eager, and bf16 ms per frame next to the other frame paths in the same process.

Per size (released 0.6B / 1.7B configs, random weights, bench/gpu_parity.py's synthetic prompt):
  float32: `frames` greedy frames (EOS held off) of qwen-tts's talker.generate vs the fused CUDA frame under
           CUDA graphs (must be identical) and vs the same path uncaptured;
  bfloat16: ms per frame (median, p95 of the generator's per-frame times) over `bench_frames` sampled frames
           (EOS held off) for fused-cuda, fused-triton (where Triton imports) and eager (the reference frame's
           eager layers under CUDA graphs: what a GPU without Triton ran before).

    python bench/fused_cuda_check.py --sizes 0b6 1b7 --frames 100 --bench-frames 300 --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.gpu_parity import build_model, cast, compare, qwen_tts_codes, synthetic_prefill  # noqa: E402
from qwen3_tts_ros.engine.frame import cuda_build  # noqa: E402
from qwen3_tts_ros.engine.frame.fused_triton import FusedTritonFrame  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats  # noqa: E402


def generator_for(model, path: str, **options) -> FrameGenerator:
    """path: fused-cuda, fused-triton or eager (the reference frame's eager layers); CUDA graphs on."""
    return FrameGenerator(model, FrameOptions(path=path, **options))


def run(generator, prefill, frames: int, sample: bool) -> tuple[torch.Tensor, StreamStats]:
    sampling = SamplingParams(
        do_sample=sample, subtalker_dosample=sample, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )
    stats = StreamStats()
    codes = torch.stack(list(generator.generate(prefill, sampling, stats=stats))).cpu()
    return codes, stats


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def check_size(size: str, frames: int, bench_frames: int, max_seq_len: int, profile: bool) -> dict:
    result: dict = {"size": size, "gpu": torch.cuda.get_device_name(), "frames": frames}
    model = build_model(size, tiny=False, device="cuda")
    base = synthetic_prefill(model, 100, 30)
    t0 = time.perf_counter()
    theirs = qwen_tts_codes(model, base, frames)
    result["qwen_tts_float32_s"] = round(time.perf_counter() - t0, 2)
    graphs = generator_for(model, "fused-cuda", max_seq_len=max_seq_len)
    result["describe"] = graphs.path.describe()
    result["capture_s"] = round(graphs.capture(), 3)
    ours, _ = run(graphs, base, frames, sample=False)
    result["float32_vs_qwen_tts"] = compare(ours, theirs)
    del graphs
    eager = generator_for(model, "fused-cuda", max_seq_len=max_seq_len, use_cuda_graphs=False)
    result["float32_graphs_equal_eager"] = bool(torch.equal(run(eager, base, frames, sample=False)[0], ours))
    del eager
    model = model.to(torch.bfloat16)
    prefill = cast(base, torch.bfloat16)
    triton = FusedTritonFrame.unavailable(torch.device("cuda")) is None
    paths = ["fused-cuda", "eager"] + (["fused-triton"] if triton else [])
    timings = {}
    for path in paths:
        generator = generator_for(model, path, max_seq_len=max_seq_len)
        capture_s = generator.capture()
        run(generator, prefill, 20, sample=True)  # warm-up
        torch.manual_seed(0)
        _, stats = run(generator, prefill, bench_frames, sample=True)
        frame_ms = stats.frame_ms[1:]
        timings[path] = dict(
            capture_s=round(capture_s, 3),
            ms_per_frame_median=percentile(frame_ms, 0.5),
            ms_per_frame_p95=percentile(frame_ms, 0.95),
            prefill_ms=round(stats.prefill_ms, 3),
        )
        print(size, path, timings[path], flush=True)
        del generator
        torch.cuda.empty_cache()
    result["bfloat16_timings"] = timings
    if profile:  # device time per kernel name, uncaptured frames (profile_frame.py)
        from bench.profile_frame import kernels_per_frame

        for path in ("fused-cuda", "fused-triton") if triton else ("fused-cuda",):
            count, table = kernels_per_frame(model, prefill, path)
            result[f"profile_{path}"] = dict(kernels_per_frame=count, costliest=table[:12])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["0b6", "1b7"], choices=["0b6", "1b7"])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--bench-frames", type=int, default=300)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--profile", action="store_true", help="per-kernel device time of one frame")
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda")
    arch = cuda_build.arch_of(device)
    t0 = time.perf_counter()
    cuda_build.kernels(device)
    results = {"arch": arch, "kernels_ready_s": round(time.perf_counter() - t0, 1), "sizes": []}
    print(json.dumps(results), flush=True)
    for size in args.sizes:
        res = check_size(size, args.frames, args.bench_frames, args.max_seq_len, args.profile)
        print(json.dumps(res), flush=True)
        results["sizes"].append(res)
        with open(os.path.join(args.out, "fused_cuda_check.json"), "w") as f:
            json.dump(results, f, indent=2)
        torch.cuda.empty_cache()
    return 0 if all(r["float32_vs_qwen_tts"]["identical"] for r in results["sizes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
