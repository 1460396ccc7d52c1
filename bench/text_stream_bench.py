"""Speaking an LLM's answer while it is written (issue 13): text in pieces vs one utterance per sentence.

A ~60-word answer is fed at a simulated LLM rate (tokens/s; pieces of 1-3 tokens, seeded) on a producer
thread, and spoken two ways by one engine:
  - streamed: one utterance from a TextFeed (engine/streamed_text.py), speaking from the first committed
    token;
  - sentences: today's node behaviour: wait for each sentence end, then speak that sentence as its own
    utterance (whole text, the method's default layout), back to back.
Reported per rate and way: first text piece -> first audio (ms); a real-time player that starts at the
first chunk and plays the chunks back to back: underruns after the first chunk (count, total ms of gaps);
real-time factor (audio seconds / seconds from the first text piece to the last chunk).

One LLM token is one text token of the engine's tokenizer: Qwen LLMs and Qwen3-TTS share the Qwen2
tokenizer, and the talker reads one text token per frame, so the token rate is what decides whether the
text keeps ahead of 12.5 frames/s. The real vocab cannot be downloaded: `--text-tokenizer bpe` (default)
gives the checkpoints the tests' trained BPE with Qwen2's pipeline (engine/checkpoints/bpe_tokenizer.py;
its tokens are shorter than the real vocab's on this text, so a piece of n tokens carries less text),
`bytes` the byte-level one (one token per character of the ASCII answer). The weights are random, so EOS
is suppressed and the runaway guard ends each utterance after (the answer's characters per token) frames
per text token: ~12.5 characters of speech per second with either tokenizer.

GPU (full-size random models, bf16): python bench/text_stream_bench.py --sizes 0b6 1b7 --out DIR
CPU smoke (tiny checkpoint, float32): python bench/text_stream_bench.py --tiny --rates 60 --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs  # noqa: E402
from qwen3_tts_ros.engine.text_feed import TextFeed  # noqa: E402
from qwen3_tts_ros.engine.text_split import SENTENCE_END  # noqa: E402
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME, RunawayGuard  # noqa: E402

ANSWER = (
    "Sure, I can help with that. The kitchen is down the hall, second door on the left, next to the "
    "blue cabinet. I will wait here while you get the cup. If the door is closed, just push it gently; "
    "it opens inward. Tell me when you are back, and we can start the next task together."
)  # 57 words, 277 characters
FRAME_S = SAMPLES_PER_FRAME / 24000
BUFFER_S = 0.16  # a player's start-up buffer: 2 frames
SAMPLING = dict(do_sample=True, subtalker_dosample=True, max_new_tokens=2048, min_new_tokens=2047)


def llm_pieces(tokenizer, text: str, seed: int) -> list[tuple[str, int]]:
    """The answer as an LLM writes it: (piece, its token count), pieces of 1-3 of the engine tokenizer's
    tokens of the text (module doc), cut where the tokens are."""
    spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    rnd, pieces, i, start = random.Random(seed), [], 0, 0
    while i < len(spans):
        n = min(rnd.randint(1, 3), len(spans) - i)
        end = spans[i + n - 1][1] if i + n < len(spans) else len(text)
        pieces.append((text[start:end], n))
        start, i = end, i + n
    return pieces


class Producer(threading.Thread):
    """Releases the pieces at `rate` tokens/s (piece k when the tokens before it are due)."""

    def __init__(self, pieces: list[tuple[str, int]], rate: float, put, close):
        super().__init__(daemon=True)
        self.pieces, self.rate, self.put, self.close = pieces, rate, put, close
        self.first_at = None

    def run(self):
        start, sent = time.perf_counter(), 0
        for piece, tokens in self.pieces:
            delay = start + sent / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if self.first_at is None:
                self.first_at = time.perf_counter()
            self.put(piece)
            sent += tokens
        self.close()


def player(arrivals: list[tuple[float, int]], first_text_at: float, start_buffer_s: float = 0.0) -> dict:
    """A real-time player that starts once `start_buffer_s` of audio has come (0: with the first chunk) and
    plays the chunks back to back; a chunk due before it arrived is a gap (an underrun)."""
    audible = [(t, n) for t, n in arrivals if n]
    have, start = 0.0, audible[-1][0]
    for t, n in audible:
        have += n * FRAME_S
        if have >= start_buffer_s:
            start = t
            break
    clock, played, gaps = start, 0.0, []
    for t, n in audible:
        due = clock + played
        if t > due:
            gaps.append(t - due)
            clock += t - due
        played += n * FRAME_S
    wall = audible[-1][0] - first_text_at
    return dict(
        first_audio_ms=round((audible[0][0] - first_text_at) * 1000, 1),
        underruns=len(gaps),
        underrun_ms=round(sum(gaps) * 1000, 1),
        audio_s=round(played, 2),
        rtf=round(played / wall, 2),
    )


def playing(arrivals, first_text_at) -> dict:
    """The player starting at the first chunk, and (`buffered_*`) one that first holds BUFFER_S of audio."""
    result = player(arrivals, first_text_at)
    buffered = player(arrivals, first_text_at, BUFFER_S)
    result.update(buffered_underruns=buffered["underruns"], buffered_underrun_ms=buffered["underrun_ms"],
                  arrivals=[(round(t - first_text_at, 4), n) for t, n in arrivals])  # fmt: skip
    return result


def speak_streamed(engine, speaker, pieces, rate, chunking):
    feed = TextFeed()
    producer = Producer(pieces, rate, feed.put, feed.close)
    audio = engine.stream_custom_voice(feed, speaker, "English", **chunking, **SAMPLING)
    producer.start()
    arrivals = [(time.perf_counter(), c.frame_count) for c in audio]
    producer.join()
    stats = audio.stats
    result = playing(arrivals, producer.first_at)
    result.update(text_stalls=stats.text_stalls, text_wait_ms=round(stats.text_wait_ms, 1),
                  frames=stats.frames, stopped_by=stats.stopped_by)  # fmt: skip
    return result


def speak_sentences(engine, speaker, pieces, rate, chunking):
    """Today's node: each sentence, once complete, is its own utterance (whole text)."""
    text, ended, changed = [""], [False], threading.Condition()

    def put(piece):
        with changed:
            text[0] += piece
            changed.notify()

    def close():
        with changed:
            ended[0] = True
            changed.notify()

    producer = Producer(pieces, rate, put, close)
    producer.start()
    arrivals, utterances = [], 0
    while True:
        with changed:
            changed.wait_for(lambda: SENTENCE_END.search(text[0]) or ended[0])
            end = SENTENCE_END.search(text[0])
            if end is not None:
                sentence, text[0] = text[0][: end.start()], text[0][end.end() :]
            elif text[0].strip():
                sentence, text[0] = text[0], ""
            else:
                break
        if sentence.strip():
            audio = engine.stream_custom_voice(sentence.strip(), speaker, "English", **chunking, **SAMPLING)
            arrivals += [(time.perf_counter(), c.frame_count) for c in audio]
            utterances += 1
    producer.join()
    result = playing(arrivals, producer.first_at)
    result.update(utterances=utterances)
    return result


def bench(size, model_dir, device, dtype, rates, chunking, seed):
    engine = Qwen3TTSCudaGraphs.from_pretrained(model_dir, device=device, dtype=dtype, max_seq_len=2048)
    speaker = engine.get_supported_speakers()[0]
    tokenizer = engine.processor.tokenizer
    pieces = llm_pieces(tokenizer, ANSWER, seed)
    tokens = sum(n for _, n in pieces)
    engine.runaway = RunawayGuard(frames_per_token=len(ANSWER) / tokens, min_frames=10)
    engine.warmup()
    for way in (speak_streamed, speak_sentences):  # first calls: lazy inits, not measured
        way(engine, speaker, llm_pieces(tokenizer, "Warm up. Twice.", seed), 1000.0, chunking)
    rows = []
    for rate in rates:
        for name, way in (("streamed", speak_streamed), ("sentences", speak_sentences)):
            result = way(engine, speaker, pieces, rate, chunking)
            result.update(size=size, way=name, rate_tokens_per_s=rate, tokens=tokens,
                          frames_per_token=round(engine.runaway.frames_per_token, 3))  # fmt: skip
            print(json.dumps(result), flush=True)
            rows.append(result)
    engine.close()
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["0b6", "1b7"])
    ap.add_argument("--rates", nargs="+", type=float, default=[15.0, 30.0, 60.0])
    ap.add_argument("--first-chunk-frames", type=int, default=1)  # config/tts.yaml's defaults
    ap.add_argument("--chunk-frames", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run on the tiny checkpoint")
    ap.add_argument("--text-tokenizer", choices=("bytes", "bpe"), default="bpe")
    ap.add_argument("--out", default="bench/results/latest")
    args = ap.parse_args()
    chunking = dict(first_chunk_frames=args.first_chunk_frames, chunk_frames=args.chunk_frames)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

            model_dir = write_tiny_checkpoint(tmp, "custom_voice", seed=1, text_tokenizer=args.text_tokenizer)
            rows += bench("tiny", str(model_dir), "cpu", torch.float32, args.rates, chunking, args.seed)
        else:
            from bench.full_size_checkpoint import write_full_size_checkpoint

            for size in args.sizes:
                model_dir = write_full_size_checkpoint(
                    os.path.join(tmp, size), size, "custom_voice", text_tokenizer=args.text_tokenizer
                )
                rows += bench(size, str(model_dir), "cuda", torch.bfloat16, args.rates, chunking, args.seed)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.tiny else "cpu"
    record = dict(date=time.strftime("%Y-%m-%d"), device=device, torch=torch.__version__,
                  text_tokenizer=args.text_tokenizer, chunking=chunking,
                  answer_words=len(ANSWER.split()), rows=rows)  # fmt: skip
    with open(os.path.join(args.out, "text_stream.json"), "w") as f:
        json.dump(record, f, indent=1)
    print("| size | rate tok/s | way | first text -> first audio ms | underruns | underrun ms | with a "
          f"{BUFFER_S:g} s start buffer: underruns / ms | RTF |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        buffered = f"{r['buffered_underruns']} / {r['buffered_underrun_ms']}"
        print(f"| {r['size']} | {r['rate_tokens_per_s']:g} | {r['way']} | {r['first_audio_ms']} | "
              f"{r['underruns']} | {r['underrun_ms']} | {buffered} | {r['rtf']} |")  # fmt: skip
    if rows:
        print("median first audio, streamed:", statistics.median(r["first_audio_ms"] for r in rows
                                                                 if r["way"] == "streamed"))  # fmt: skip


if __name__ == "__main__":
    main()
