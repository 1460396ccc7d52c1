"""Endurance on the GPU: many utterances back to back on a full-size random Qwen3-TTS model, then load /
capture / release cycles. Prints one JSON line per block of utterances (so a cut-off run still reports),
then a summary JSON line, and writes everything to --out. The CPU CI version is test/ros/test_endurance.py.

    python bench/endurance.py --size 0b6 --utterances 500 --out bench/results/endurance.json   (GPU, ~6 min)
    python bench/endurance.py --cycles 20 --utterances 0 --out bench/results/cycles.json          (GPU)
    python bench/endurance.py --tiny --device cpu --utterances 20 --block 5 --cycles 2 --frames 8  (CPU check)

Per block of --block utterances (texts of varied length, sampling on as in the released defaults, streamed
in 1 + 4-frame chunks like the node, --frames codec frames at most each):
  gpu_allocated_mb / gpu_reserved_mb after the block, gpu_peak_mb during it, host_rss_mb after it,
  frame_ms p50 / p95 / max over every frame of the block, time to first audio p50 / p95, real-time factor,
  and graph_captures: CUDA graphs captured so far (engine.capture_report(): the frame graph, prefill
  buckets, codec sizes; must stay at its value after the first capture: no recapture).
Summary: growth of GPU allocated / host RSS from the end of the first block (warm-up) to the end, and the
ratio of the last block's frame p95 to the first's. Cycles (--cycles N): close the engine, load it again,
capture, speak one utterance; GPU memory allocated after each close vs before the first load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.benchmark import sampled_request  # noqa: E402
from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs  # noqa: E402
from qwen3_tts_ros.engine.stats import percentile  # noqa: E402
from qwen3_tts_ros.testing.process_memory import rss_bytes  # noqa: E402

WORDS = ("robot arm moves left right forward slowly quickly the red blue cup table door kitchen battery "
         "charging station obstacle ahead please wait goal reached turning corner hello again").split()


def _mb(n_bytes):
    return round(n_bytes / 2**20, 2)


def _texts(n, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))).capitalize() + "."
            for _ in range(n)]


def _gpu(device):
    if device != "cuda":
        return dict(gpu_allocated_mb=0.0, gpu_reserved_mb=0.0, gpu_peak_mb=0.0)
    torch.cuda.synchronize()
    return dict(gpu_allocated_mb=_mb(torch.cuda.memory_allocated()),
                gpu_reserved_mb=_mb(torch.cuda.memory_reserved()),
                gpu_peak_mb=_mb(torch.cuda.max_memory_allocated()))


def _load(model_dir, args):
    return Qwen3TTSCudaGraphs.from_pretrained(
        str(model_dir), device=args.device, dtype=getattr(torch, args.dtype), max_seq_len=args.max_seq_len,
        use_cuda_graphs=True, allow_download=False)


def _speak(engine, text, speaker, frames):
    request = sampled_request(text, frames, speaker, suppress_eos=False, language="Auto")
    stream = engine.stream(request, first_chunk_frames=1, chunk_frames=4)
    chunks = list(stream)
    assert chunks and chunks[-1].is_final, "every utterance ends with a final chunk"
    return stream.stats


def run_utterances(engine, args, out):
    speaker = engine.get_supported_speakers()[0]
    texts = _texts(args.utterances, args.seed)
    blocks = []
    for start in range(0, args.utterances, args.block):
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        frame_ms, ttfa, audio_s, wall_s = [], [], 0.0, 0.0
        for text in texts[start:start + args.block]:
            t0 = time.perf_counter()
            stats = _speak(engine, text, speaker, args.frames)
            wall_s += time.perf_counter() - t0
            frame_ms += stats.frame_ms
            ttfa.append(stats.time_to_first_audio_ms)
            audio_s += stats.audio_seconds
        gc.collect()
        block = dict(utterances_done=min(start + args.block, args.utterances), frames=len(frame_ms),
                     frame_ms_p50=round(percentile(frame_ms, 50), 3),
                     frame_ms_p95=round(percentile(frame_ms, 95), 3),
                     frame_ms_max=round(max(frame_ms), 3) if frame_ms else 0.0,
                     ttfa_ms_p50=round(percentile(ttfa, 50), 2),
                     ttfa_ms_p95=round(percentile(ttfa, 95), 2),
                     rtf=round(audio_s / wall_s, 3) if wall_s else 0.0,
                     graph_captures=engine.capture_report().graphs_captured,
                     host_rss_mb=_mb(rss_bytes()), **_gpu(args.device))
        blocks.append(block)
        print(json.dumps(dict(block=block)), flush=True)
        out["blocks"] = blocks
    if len(blocks) >= 2:
        first, last = blocks[0], blocks[-1]
        out["summary"] = dict(
            utterances=args.utterances,
            gpu_allocated_growth_mb=round(last["gpu_allocated_mb"] - first["gpu_allocated_mb"], 2),
            gpu_reserved_growth_mb=round(last["gpu_reserved_mb"] - first["gpu_reserved_mb"], 2),
            host_rss_growth_mb=round(last["host_rss_mb"] - first["host_rss_mb"], 2),
            frame_p95_last_over_first=round(last["frame_ms_p95"] / first["frame_ms_p95"], 3),
            frame_p95_by_block=[b["frame_ms_p95"] for b in blocks],
            graph_captures=engine.capture_report().graphs_captured,
        )
        print(json.dumps(dict(summary=out["summary"])), flush=True)


def run_cycles(model_dir, args, out, baseline_allocated):
    cycles = []
    for i in range(args.cycles):
        t0 = time.perf_counter()
        engine = _load(model_dir, args)
        engine.capture()
        _speak(engine, "One more cycle of load, capture and release.", engine.get_supported_speakers()[0], 8)
        engine.close()
        graphs = engine.capture_report().graphs_captured  # the figures at close
        del engine
        gc.collect()
        if args.device == "cuda":
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:  # as the node's release does
                clear_workspaces()
            torch.cuda.empty_cache()
        rec = dict(cycle=i, seconds=round(time.perf_counter() - t0, 2), graph_captures=graphs,
                   host_rss_mb=_mb(rss_bytes()), **_gpu(args.device))
        rec["gpu_allocated_over_baseline_mb"] = round(rec["gpu_allocated_mb"] - _mb(baseline_allocated), 2)
        cycles.append(rec)
        print(json.dumps(dict(cycle=rec)), flush=True)
    out["cycles"] = cycles


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="0b6", choices=("0b6", "1b7"))
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny random checkpoint (CPU logic check)")
    ap.add_argument("--model", default="", help="an existing model directory instead of a written one")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="", help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--max-seq-len", type=int, default=2048)
    ap.add_argument("--utterances", type=int, default=500)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--frames", type=int, default=32, help="most codec frames per utterance (80 ms each)")
    ap.add_argument("--cycles", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    torch.manual_seed(args.seed)
    workdir = tempfile.mkdtemp(prefix="q3_endurance_")
    if args.model:
        model_dir = args.model
    elif args.tiny:
        from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

        model_dir = write_tiny_checkpoint(os.path.join(workdir, "tiny"), "custom_voice", seed=args.seed)
    else:
        from bench.full_size_checkpoint import write_full_size_checkpoint

        t0 = time.perf_counter()
        model_dir = write_full_size_checkpoint(os.path.join(workdir, args.size), size=args.size,
                                               kind="custom_voice", seed=args.seed)
        print(json.dumps(dict(checkpoint_written_s=round(time.perf_counter() - t0, 1))), flush=True)
    if args.device == "cuda":
        torch.cuda.empty_cache()
    gc.collect()
    baseline_allocated = torch.cuda.memory_allocated() if args.device == "cuda" else 0
    out = dict(config=dict(vars(args), model_dir=str(model_dir),
                           gpu=torch.cuda.get_device_name(0) if args.device == "cuda" else "",
                           torch=torch.__version__),
               baseline=dict(host_rss_mb=_mb(rss_bytes()), gpu_allocated_mb=_mb(baseline_allocated)))
    print(json.dumps(out), flush=True)
    try:
        if args.utterances:
            t0 = time.perf_counter()
            engine = _load(model_dir, args)
            capture_s = engine.capture()
            out["load_and_capture"] = dict(seconds=round(time.perf_counter() - t0, 2),
                                           capture_s=round(capture_s, 2), host_rss_mb=_mb(rss_bytes()),
                                           **_gpu(args.device))
            print(json.dumps(dict(load_and_capture=out["load_and_capture"])), flush=True)
            run_utterances(engine, args, out)
            engine.close()
            del engine
        if args.cycles:
            run_cycles(model_dir, args, out, baseline_allocated)
    finally:
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
