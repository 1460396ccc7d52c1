"""Per-chunk streaming decode time of the 12 Hz codec: re-decoding 25 frames of context (the approach
before CausalCodecDecoder) vs carried state (eager, and CUDA graphs on a GPU). Released codec architecture,
random weights.

    python bench/codec_stream.py --device cpu --threads 2
    python bench/codec_stream.py --device cuda --dtype bfloat16 --out results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from qwen3_tts_ros.engine.audio.causal_codec import CausalCodecDecoder
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder

CONTEXT = 25  # frames the old streaming decoder re-decoded per chunk


def timed(device, fn, repeats):
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()  # ends with the samples on the host, as the stream needs them
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def redecode(decoder, codes, n):
    """The old way: decode the chunk with CONTEXT frames before it, keep the chunk's samples."""
    at = CONTEXT

    def step():
        nonlocal at
        with torch.inference_mode():
            wav = decoder(codes[at - CONTEXT : at + n].T[None])[0, 0, CONTEXT * 1920 :]
        at += n
        return wav.float().cpu()

    return step


def carried(codec, codes, n):
    codec.start(codes[:CONTEXT])
    at = CONTEXT

    def step():
        nonlocal at
        codec.decode(codes[at : at + n])
        at += n

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    decoder = random_speech_decoder("released").to(args.device, getattr(torch, args.dtype))
    codes = torch.randint(0, 2048, (CONTEXT + 400, 16), generator=torch.Generator().manual_seed(0))
    codes = codes.to(args.device)
    variants = {"eager": CausalCodecDecoder(decoder, use_cuda_graphs=False)}
    if args.device == "cuda":
        graphed = CausalCodecDecoder(decoder)
        print(f"graph capture {graphed.capture():.2f} s")
        variants["graphs"] = graphed
    results = []
    for n in args.chunks:
        row = {
            "chunk_frames": n,
            "re-decode 25 frames": timed(args.device, redecode(decoder, codes, n), args.repeats),
        }
        for name, codec in variants.items():
            step = carried(codec, codes, n)
            step()  # warm-up (also the first-call lazy inits)
            row[f"carried state, {name}"] = timed(args.device, step, args.repeats)
        results.append(row)
        print(
            f"chunk {n} frame(s): "
            + ", ".join(f"{k} {v[0]:.1f} ms (min {v[1]:.1f})" for k, v in row.items() if k != "chunk_frames")
        )
    if args.out:
        meta = dict(
            device=args.device, dtype=args.dtype, threads=torch.get_num_threads(), unit="ms median, min"
        )
        if args.device == "cuda":
            meta["gpu"] = torch.cuda.get_device_name()
        with open(args.out, "w") as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)


if __name__ == "__main__":
    main()
