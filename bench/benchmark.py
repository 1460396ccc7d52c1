"""GPU benchmark of the engine on full-size random Qwen3-TTS models (exact released configs).

Run on a GPU (through the device tool), e.g.
    python bench/benchmark.py --sizes 0b6 1b7 --frames 300 --out bench/results
Writes <out>/benchmark.json and <out>/frame_latency.png, and prints a markdown table for BENCHMARKS.md.

What is measured, per model size and per codec stream setting (`--codec-stream`: the engine's
codec_stream=True decodes on a side stream overlapped with generation, False on the main stream; "both"
measures one engine of each, loaded one after the other from the same checkpoint), in one process on one
GPU (bf16, max_seq_len 2048):
  - capture_s: CUDA-graph capture + warm-up time (`Qwen3TTSCudaGraphs.capture()`)
  - prefill_ms: prompt build + talker prefill for a ~100-position prompt
  - ms/frame median and p95 over >= `--frames` frames with EOS suppressed (min_new_tokens = max_new_tokens),
    sampling on (temperature 0.9, top-k 50, repetition penalty 1.05, subtalker sampling on) as in anchors.py,
    streamed in 4-frame chunks (CUDA events between frame completions), and the wall ms/frame of that stream
  - per chunk of that stream: decode wait = from its last frame handed out to its PCM on the host, and the
    interval between consecutive chunks' PCM (4 frames' worth of generation when decoding hides behind it)
  - time to first audio: text in -> first PCM chunk out of `stream()`, first chunk of 1 and of 4 frames
  - real-time factor: audio seconds / wall seconds of a whole streamed utterance
  - peak GPU memory during generation, and the weights' size
  - plain qwen-tts `talker.generate` ms/frame on the same weights (the method of shared/bench/anchors.py)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.full_size_checkpoint import write_full_size_checkpoint  # noqa: E402
from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs  # noqa: E402
from qwen3_tts_ros.engine.frame.options import SUGGESTED_PREFILL_BUCKETS  # noqa: E402
from qwen3_tts_ros.engine.stats import percentile  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest  # noqa: E402

# ~100 prefill positions with the byte-level benchmark tokenizer (custom voice, non-streaming text feed).
TEXT_100 = "Robots that speak need their first sound out fast; this sentence fills the prompt to size."


def sampled_request(text, frames, speaker, *, suppress_eos=True, language="English"):
    """A custom-voice request with anchors.py's sampling settings, `frames` codec frames at most (exactly
    that many with suppress_eos: min_new_tokens = max_new_tokens; otherwise qwen-tts's default minimum)."""
    limits = dict(max_new_tokens=frames + 1, **({"min_new_tokens": frames + 1} if suppress_eos else {}))
    sampling = SamplingParams(do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
                              **limits)
    return SpeechRequest(
        text=text, mode="custom_voice", language=language, speaker=speaker, sampling=sampling
    )


def _qwen_tts_ms_per_frame(tts, n_short=11, n_long=41):
    """Plain qwen-tts talker.generate on the same weights (shared/bench/anchors.py method)."""
    model = tts.model
    tc = model.config.talker_config
    h = tc.hidden_size
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    g = torch.Generator(device=dev).manual_seed(1)
    emb = (torch.randn(1, 100, h, device=dev, generator=g) * 0.05).to(dtype)
    tth = (torch.randn(1, 30, h, device=dev, generator=g) * 0.05).to(dtype)
    pad = (torch.randn(1, 1, h, device=dev, generator=g) * 0.05).to(dtype)
    mask = torch.ones(1, 100, dtype=torch.long, device=dev)
    suppress = [i for i in range(tc.vocab_size - 1024, tc.vocab_size) if i != tc.codec_eos_token_id]

    def run(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.talker.generate(
                inputs_embeds=emb, attention_mask=mask, trailing_text_hidden=tth, tts_pad_embed=pad,
                max_new_tokens=n, min_new_tokens=n, do_sample=True, top_k=50, top_p=1.0, temperature=0.9,
                repetition_penalty=1.05, eos_token_id=tc.codec_eos_token_id, suppress_tokens=suppress,
                subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0, subtalker_temperature=0.9,
                output_hidden_states=True, return_dict_in_generate=True)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(8)
    t_short, t_long = run(n_short), run(n_long)
    return 1000.0 * (t_long - t_short) / (n_long - n_short)


def bench_engine(size, model_dir, frames, with_qwen_tts, buckets, codec_stream, fused=True):
    torch.cuda.empty_cache()
    base_mem = torch.cuda.memory_allocated()
    frame_options = dict(prefill_buckets=SUGGESTED_PREFILL_BUCKETS) if buckets else {}
    frame_options["fused"] = fused
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        model_dir, device="cuda", dtype=torch.bfloat16, max_seq_len=2048, frame_options=frame_options,
        codec_stream=codec_stream,
    )
    weights_gb = (torch.cuda.memory_allocated() - base_mem) / 1e9
    speaker = engine.get_supported_speakers()[0]
    capture_s = engine.capture()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()

    # Per-frame latency over a long utterance (EOS suppressed), streamed in 4-frame chunks.
    stream = engine.stream(sampled_request(TEXT_100, frames, speaker), first_chunk_frames=4, chunk_frames=4)
    wall0 = time.perf_counter()
    chunks = [c for c in stream if c.frame_count]
    wall = time.perf_counter() - wall0
    audio_s = sum(len(c.pcm) for c in chunks) / 24000.0
    st = stream.stats
    frame_ms = list(st.frame_ms)
    decode_wait_ms = [(c.decoded_at_s - c.generated_at_s) * 1000 for c in chunks]
    interval_ms = [(b.decoded_at_s - a.decoded_at_s) * 1000 for a, b in zip(chunks, chunks[1:])]
    peak_gb = (torch.cuda.max_memory_allocated() - base_mem) / 1e9

    ttfa = {}
    prefill = []
    for first in (1, 4):
        runs = []
        for _ in range(5):
            s = engine.stream(sampled_request(TEXT_100, 8, speaker), first_chunk_frames=first, chunk_frames=4)
            for _chunk in s:
                pass
            runs.append(s.stats.time_to_first_audio_ms)
            prefill.append(s.stats.prefill_ms)
        ttfa[first] = statistics.median(runs)

    rec = dict(size=size, gpu=torch.cuda.get_device_name(0), dtype="bfloat16", max_seq_len=2048,
               codec_stream=engine.decode_cuda_stream is not None,
               frame_path=engine.capture_report().frame_path,
               prefill_buckets=bool(buckets),
               capture_s=round(capture_s, 2), prefill_ms=round(statistics.median(prefill), 2),
               frames=len(frame_ms), ms_per_frame_median=round(statistics.median(frame_ms), 3),
               ms_per_frame_p95=round(percentile(frame_ms, 95), 3),
               wall_ms_per_frame=round(wall * 1000 / len(frame_ms), 3),
               chunk_decode_wait_ms_median=round(statistics.median(decode_wait_ms), 3),
               chunk_decode_wait_ms_p95=round(percentile(decode_wait_ms, 95), 3),
               chunk_interval_ms_median=round(statistics.median(interval_ms), 3),
               chunk_interval_ms_p95=round(percentile(interval_ms, 95), 3),
               ttfa_ms_first_chunk_1=round(ttfa[1], 2), ttfa_ms_first_chunk_4=round(ttfa[4], 2),
               rtf=round(audio_s / wall, 2), audio_s=round(audio_s, 2),
               weights_gb=round(weights_gb, 3), peak_gb_over_weights=round(peak_gb - weights_gb, 3),
               frame_ms=[round(x, 4) for x in frame_ms])
    if with_qwen_tts:
        rec["qwen_tts_ms_per_frame"] = round(_qwen_tts_ms_per_frame(engine.tts), 1)
    engine.close()
    return rec


def _plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    for rec in results:
        stream = "side" if rec["codec_stream"] else "main"
        label = f"{rec['size']}, codec on {stream} stream (median {rec['ms_per_frame_median']} ms)"
        ax.plot(rec["frame_ms"], label=label)
    ax.set_xlabel("frame")
    ax.set_ylabel("ms per frame")
    ax.set_title(f"qwen3_tts_ros per-frame latency, {results[0]['gpu']}, bf16")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["0b6", "1b7"])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--no-qwen-tts", action="store_true")
    ap.add_argument("--no-buckets", action="store_true", help="unpadded eager prefill")
    ap.add_argument("--codec-stream", choices=("on", "off", "both"), default="both",
                    help="streaming codec on the engine's side stream (on), the main stream (off), or both")
    ap.add_argument("--fused", choices=("on", "off"), default="on",
                    help="the fused Triton frame (on, as for issue 15) or the compiled reference one")
    args = ap.parse_args()
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.codec_stream]
    os.makedirs(args.out, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for size in args.sizes:
            model_dir = write_full_size_checkpoint(
                os.path.join(workdir, size), size=size, kind="custom_voice"
            )
            for i, codec_stream in enumerate(settings):
                with_qwen_tts = not args.no_qwen_tts and i == 0  # the same weights: once per size
                rec = bench_engine(
                    size, model_dir, args.frames, with_qwen_tts, not args.no_buckets, codec_stream,
                    args.fused == "on",
                )
                print(json.dumps({k: v for k, v in rec.items() if k != "frame_ms"}), flush=True)
                results.append(rec)
    meta = dict(date=time.strftime("%Y-%m-%d"), torch=torch.__version__,
                transformers=__import__("transformers").__version__, gpu=torch.cuda.get_device_name(0))
    with open(os.path.join(args.out, "benchmark.json"), "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    _plot(results, os.path.join(args.out, "frame_latency.png"))
    print(f"\n{meta}\n")
    print("| size | codec stream | capture s | prefill ms | ms/frame median | p95 | wall ms/frame "
          "| chunk decode wait ms median / p95 | chunk interval ms median / p95 | TTFA 1-frame ms "
          "| TTFA 4-frame ms | RTF | peak GB over weights | qwen-tts ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        stream = "side" if r["codec_stream"] else "main"
        print(f"| {r['size']} | {stream} | {r['capture_s']} | {r['prefill_ms']} | "
              f"{r['ms_per_frame_median']} | {r['ms_per_frame_p95']} | {r['wall_ms_per_frame']} | "
              f"{r['chunk_decode_wait_ms_median']} / {r['chunk_decode_wait_ms_p95']} | "
              f"{r['chunk_interval_ms_median']} / {r['chunk_interval_ms_p95']} | "
              f"{r['ttfa_ms_first_chunk_1']} | {r['ttfa_ms_first_chunk_4']} | "
              f"{r['rtf']} | {r['peak_gb_over_weights']} | {r.get('qwen_tts_ms_per_frame', '-')} |")


if __name__ == "__main__":
    main()
