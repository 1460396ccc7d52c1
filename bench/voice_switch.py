"""Per-utterance voices (issue 25): what a voice costs at configure, what switching voices between utterances
costs, and that switching captures nothing again.

For each model kind (tiny random checkpoints):
  - configure cost per voice: prepare_voice (validation, a clone's reference encoded once, the room check)
    for every voice of the kind, in ms;
  - switch cost: utterances alternate between two prepared voices (A B A B ...) and then repeat one voice
    (B B B ...); per utterance the prefill (ms) and the time to first audio (ms). The
    target is that a switch costs nothing beyond the new prompt's prefill: the prefill and first audio of B
    after A equal those of B after B, within the run's spread (both columns printed with their spread);
  - recapture: the engine's capture report (graphs_captured) after capture and after all the utterances.
    On a CPU nothing is captured (0 and 0); on CUDA the figure shows no recapture.

Greedy decoding; each utterance ends after --frames frames (max_new_tokens).

CPU (tiny checkpoints): python bench/voice_switch.py --out bench/results/DATE-cpu/voice_switch_tiny_cpu.json
GPU: python bench/voice_switch.py --device cuda --dtype bfloat16 --out ...
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs  # noqa: E402
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest  # noqa: E402
from qwen3_tts_ros.engine.voice import VoiceSettings  # noqa: E402
from qwen3_tts_ros.engine.voice_book import prepare_voice  # noqa: E402

TEXT = "The kitchen is down the hall, second door on the left."


def voices_of(kind: str, reference: str) -> dict[str, VoiceSettings]:
    """The voices measured for a model kind (A and B are the two that alternate)."""
    if kind == "custom_voice":
        return {"A": VoiceSettings(speaker="Vivian", language="English"),
                "B": VoiceSettings(speaker="Ryan", instruct="Speak quickly and urgently.")}
    if kind == "voice_design":
        return {"A": VoiceSettings(instruct="A calm, low voice."),
                "B": VoiceSettings(instruct="A bright, fast, young voice, a little out of breath.")}
    return {"A": VoiceSettings(ref_audio=reference, ref_text="A reference sentence of three seconds."),
            "B": VoiceSettings(ref_audio=reference, x_vector_only=True)}


def reference_wav(directory: str, seconds: float = 3.0) -> str:
    import soundfile as sf

    t = np.arange(int(seconds * 24000)) / 24000
    path = os.path.join(directory, "ref.wav")
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 24000)
    return path


def utterance(engine, fields: dict, frames: int) -> dict:
    sampling = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=frames)
    stream = engine.stream(SpeechRequest(text=TEXT, sampling=sampling, **fields), first_chunk_frames=1)
    for _ in stream:
        pass
    st = stream.stats
    return dict(prefill_ms=st.prefill_ms, ttfa_ms=st.time_to_first_audio_ms, frames=st.frames)


def spread(values: list[float]) -> dict:
    return dict(mean=round(statistics.fmean(values), 3), min=round(min(values), 3), max=round(max(values), 3),
                n=len(values))


def run_kind(kind: str, model_dir: str, args, reference: str) -> dict:
    import torch

    dtype = getattr(torch, args.dtype)
    engine = Qwen3TTSCudaGraphs.from_pretrained(model_dir, device=args.device, dtype=dtype)
    prepared = {}
    configure_ms = {}
    for name, settings in voices_of(kind, reference).items():
        t0 = time.perf_counter()
        prepared[name] = prepare_voice(engine, name, settings)
        configure_ms[name] = round((time.perf_counter() - t0) * 1e3, 2)
    engine.capture()
    engine.warmup()
    captured_before = engine.capture_report().graphs_captured
    after_switch, after_same = [], []
    for _ in range(args.rounds):  # A B A B ...: every B follows an A
        utterance(engine, prepared["A"].request_fields, args.frames)
        after_switch.append(utterance(engine, prepared["B"].request_fields, args.frames))
    utterance(engine, prepared["B"].request_fields, args.frames)
    for _ in range(args.rounds):  # B B B ...: every B follows a B
        after_same.append(utterance(engine, prepared["B"].request_fields, args.frames))
    captured_after = engine.capture_report().graphs_captured
    engine.close()
    return dict(
        configure_ms_per_voice=configure_ms,
        voice_b_after_a={k: spread([u[k] for u in after_switch]) for k in ("prefill_ms", "ttfa_ms")},
        voice_b_after_b={k: spread([u[k] for u in after_same]) for k in ("prefill_ms", "ttfa_ms")},
        graphs_captured_after_capture=captured_before,
        graphs_captured_after_switching=captured_after,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kinds", nargs="+", default=["custom_voice", "voice_design", "base"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        reference = reference_wav(tmp)
        for kind in args.kinds:
            model_dir = str(write_tiny_checkpoint(os.path.join(tmp, kind), kind, seed=0))
            results[kind] = run_kind(kind, model_dir, args, reference)
            print(kind, json.dumps(results[kind], indent=1), flush=True)
    import torch

    report = dict(
        date=datetime.date.today().isoformat(),
        machine=dict(host=platform.node(), cpu=platform.processor() or platform.machine(),
                     cores=os.cpu_count(), torch=torch.__version__,
                     gpu=torch.cuda.get_device_name() if args.device.startswith("cuda") else ""),
        config=dict(vars(args), checkpoints="tiny random (engine/checkpoints/tiny_checkpoint.py)", text=TEXT),
        results=results,
    )
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
