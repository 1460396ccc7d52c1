"""Launch shapes of the fused kernels (fused_triton.Tuning), measured on the whole captured frame.

Full-size random 0.6B (released config), bf16, synthetic 100-position prompt, sampling on (top-k 50),
EOS kept out. Each knob is varied alone from the defaults (ms/frame median of 60 frames after 10), then
the best value of each knob together, on 0.6B and 1.7B. One JSON line per run; --out writes them all.

    python bench/fused_sweep.py --out sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.gpu_parity import build_model, cast, synthetic_prefill  # noqa: E402
from bench.profile_frame import _sampling  # noqa: E402
from qwen3_tts_ros.engine.frame import fused_triton  # noqa: E402
from qwen3_tts_ros.engine.frame.generator import FrameGenerator  # noqa: E402
from qwen3_tts_ros.engine.frame.options import FrameOptions  # noqa: E402
from qwen3_tts_ros.engine.types import StreamStats  # noqa: E402

KNOBS = dict(  # the defaults' values are measured once, as "defaults"
    gemv_tile=(4096, 16384),
    gemv_programs=(128, 512),
    gemv_warps=(2, 8),
    attention_warps=(1, 2),
    sample_warps=(1, 8, 16),
)


def measure(model, prefill, tuning: fused_triton.Tuning, frames: int = 60) -> float:
    fused_triton.TUNING = tuning
    generator = FrameGenerator(
        model, FrameOptions(max_seq_len=2048, use_cuda_graphs=True, path="fused-triton")
    )
    generator.capture()
    stats = StreamStats()
    list(generator.generate(prefill, _sampling(frames + 10), stats=stats))
    del generator
    torch.cuda.empty_cache()
    return round(statistics.median(stats.frame_ms[10:]), 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    base = fused_triton.Tuning()
    records = []
    model = build_model("0b6", tiny=False, device="cuda").to(torch.bfloat16)
    prefill = cast(synthetic_prefill(model, 100, 30), torch.bfloat16)
    default_ms = measure(model, prefill, base)
    print(json.dumps(dict(size="0b6", tuning="defaults", ms_per_frame=default_ms)), flush=True)
    best = {}
    for knob, values in KNOBS.items():
        timings = {getattr(base, knob): default_ms}
        for value in values:
            timings[value] = measure(model, prefill, dataclasses.replace(base, **{knob: value}))
            rec = dict(size="0b6", knob=knob, value=value, ms_per_frame=timings[value])
            print(json.dumps(rec), flush=True)
            records.append(rec)
        best[knob] = min(timings, key=timings.get)
    tuned = dataclasses.replace(base, **best)
    for size in ("0b6", "1b7"):
        if size == "0b6":
            rec = dict(
                size=size,
                tuning="best",
                **dataclasses.asdict(tuned),
                ms_per_frame=measure(model, prefill, tuned),
            )
            print(json.dumps(rec), flush=True)
            records.append(rec)
            continue
        if size == "1b7":
            del model
            torch.cuda.empty_cache()
            model = build_model(size, tiny=False, device="cuda").to(torch.bfloat16)
            prefill = cast(synthetic_prefill(model, 100, 30), torch.bfloat16)
        for name, tuning in (("defaults", base), ("best", tuned)):
            rec = dict(
                size=size,
                tuning=name,
                **dataclasses.asdict(tuning),
                ms_per_frame=measure(model, prefill, tuning),
            )
            print(json.dumps(rec), flush=True)
            records.append(rec)
    with open(args.out, "w") as f:
        json.dump(
            dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, records=records), f, indent=1
        )


if __name__ == "__main__":
    main()
