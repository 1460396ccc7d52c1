"""GPU smoke test and timing of the one-graph-per-frame decode loop (FrameGenerator).

Random weights with the released architecture (bench/gpu_parity.py's released_config; 0.6B by default),
a synthetic prompt of --prompt-len positions and 30 trailing text positions.
  1. float32, greedy, EOS kept out: graph-replayed codes == our eager codes for every (launch_ahead,
     frames_per_replay) setting (must hold); whether prefill buckets (padded, captured prefill; off by
     default) give the same codes as unpadded prefill (matmuls of another size may round differently on
     the GPU), and whether the uncompiled layer functions give the same codes as the compiled ones.
  2. --dtype (bfloat16), greedy, EOS kept out (min_new_tokens = max_new_tokens): per setting the capture
     time, ms per frame from the CUDA events (median, p95 over --frames frames), wall ms per frame on the
     host (first to last frame handed out), prefill ms and time to the first frame (median of 5), and the
     peak GPU memory above the weights; also with prefill buckets, and without torch.compile.
Prints one JSON line per result; --out also writes them all to a JSON file.

    python bench/framegraph_smoke.py --size 0b6 --frames 300 --out /tmp/framegraph.json
    python bench/framegraph_smoke.py --device cpu --tiny --dtype float32 --frames 12 --parity-frames 8
                                                                                      (logic check on CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.gpu_parity import build_model, cast, synthetic_prefill  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import SUGGESTED_PREFILL_BUCKETS, FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats  # noqa: E402

PARITY_SETTINGS = [(1, 1), (2, 1), (4, 1), (2, 2), (3, 4)]  # (launch_ahead, frames_per_replay)
TIMING_SETTINGS = [(1, 1), (2, 1), (4, 1), (2, 2), (2, 4)]


def greedy(frames: int) -> SamplingParams:
    """Greedy, exactly `frames` frames (EOS masked until then, as gpu_parity.py does)."""
    return SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )


def codes(generator, prefill, frames: int) -> torch.Tensor:
    return torch.stack(list(generator.generate(prefill, greedy(frames)))).cpu()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def parity(model, prefill, args) -> dict:
    """float32: graph replay (every setting) and prefill buckets against our eager path."""
    eager_generator = FrameGenerator(model, FrameOptions(max_seq_len=args.max_seq_len, use_cuda_graphs=False))
    eager = codes(eager_generator, prefill, args.parity_frames)
    del eager_generator
    result = {"check": "parity", "dtype": "float32", "frames": args.parity_frames}
    for launch_ahead, per_replay in PARITY_SETTINGS:
        generator = FrameGenerator(
            model,
            FrameOptions(
                max_seq_len=args.max_seq_len, launch_ahead=launch_ahead, frames_per_replay=per_replay
            ),
        )
        got = codes(generator, prefill, args.parity_frames)
        result[f"graph_equals_eager_ahead{launch_ahead}_per{per_replay}"] = bool(torch.equal(got, eager))
        del generator
    # Options that may round differently from the default path: padded prefill matmuls of another size,
    # uncompiled layer functions (compiled kernels fuse and round differently).
    for name, options in [
        ("buckets", dict(prefill_buckets=SUGGESTED_PREFILL_BUCKETS)),
        ("uncompiled", dict(compile=False)),
    ]:
        generator = FrameGenerator(model, FrameOptions(max_seq_len=args.max_seq_len, **options))
        got = codes(generator, prefill, args.parity_frames)
        del generator
        result[f"{name}_equal_eager"] = bool(torch.equal(got, eager))
        same = (got == eager).all(dim=1)
        if not bool(same.all()):
            result[f"{name}_leading_identical_frames"] = int((~same).nonzero()[0, 0])
    return result


def timing(model, prefill, args, launch_ahead: int, per_replay: int, options: dict) -> dict:
    device = args.device
    on_cuda = device.startswith("cuda")
    sync(device)
    if on_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    weights = torch.cuda.memory_allocated() if on_cuda else 0
    generator = FrameGenerator(
        model,
        FrameOptions(
            max_seq_len=args.max_seq_len, launch_ahead=launch_ahead, frames_per_replay=per_replay, **options
        ),
    )
    capture_s = generator.capture()
    codes(generator, prefill, 8)  # warm-up

    prefill_ms, first_frame_ms = [], []
    for _ in range(5):
        stats = StreamStats()
        start = time.perf_counter()
        frames = generator.generate(prefill, greedy(2), stats=stats)
        next(frames)
        first_frame_ms.append((time.perf_counter() - start) * 1000)
        frames.close()
        prefill_ms.append(stats.prefill_ms)

    stats = StreamStats()
    arrivals = []
    for _ in generator.generate(prefill, greedy(args.frames), stats=stats):
        arrivals.append(time.perf_counter())
    frame_ms = sorted(stats.frame_ms)
    result = {
        "check": "timing",
        "dtype": args.dtype,
        "launch_ahead": launch_ahead,
        "frames_per_replay": per_replay,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "prompt_len": args.prompt_len,
        "frames": len(arrivals),
        "capture_s": round(capture_s, 3),
        "ms_per_frame_median": round(statistics.median(frame_ms), 4),
        "ms_per_frame_p95": round(frame_ms[int(0.95 * (len(frame_ms) - 1))], 4),
        "wall_ms_per_frame": round((arrivals[-1] - arrivals[0]) * 1000 / max(len(arrivals) - 1, 1), 4),
        "prefill_ms_median": round(statistics.median(prefill_ms), 3),
        "first_frame_ms_median": round(statistics.median(first_frame_ms), 3),
    }
    if on_cuda:
        result["peak_gb_above_weights"] = round((torch.cuda.max_memory_allocated() - weights) / 1e9, 3)
    del generator
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default="0b6", choices=["0b6", "1b7"])
    parser.add_argument("--tiny", action="store_true", help="tiny test widths instead of the released config")
    parser.add_argument("--frames", type=int, default=300, help="timed frames per setting")
    parser.add_argument("--parity-frames", type=int, default=40)
    parser.add_argument("--prompt-len", type=int, default=100)
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--out", help="JSON output path")
    args = parser.parse_args(argv)

    header = {"torch": torch.__version__, "size": args.size, "tiny": args.tiny, "device": args.device}
    if args.device.startswith("cuda"):
        header["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(header), flush=True)
    results = [header]
    model = build_model(args.size, args.tiny, args.device)
    base_prefill = synthetic_prefill(model, args.prompt_len, 30)
    ok = True
    if not args.skip_parity:
        res = parity(model, base_prefill, args)
        ok = all(v for k, v in res.items() if k.startswith("graph_equals_eager"))
        print(json.dumps(res), flush=True)
        results.append(res)
    model = model.to(getattr(torch, args.dtype))
    prefill = cast(base_prefill, getattr(torch, args.dtype))
    settings = [(a, f, {}) for a, f in TIMING_SETTINGS] + [
        (2, 1, dict(prefill_buckets=SUGGESTED_PREFILL_BUCKETS)),
        (2, 1, dict(compile=False)),
    ]
    for launch_ahead, per_replay, options in settings:
        res = timing(model, prefill, args, launch_ahead, per_replay, options)
        print(json.dumps(res), flush=True)
        results.append(res)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
