"""The streaming codec on the engine's side stream (codec_stream=True, the CUDA default) against the same
engine decoding on the main stream (codec_stream=False) and against the non-streaming decode. gpu-marked,
except `test_checks_on_cpu`: on the CPU both engines take the one plain path, so CI runs the checks' logic.

- The codec alone captured and replayed on its own stream: as accurate as qwen-tts's decode (released
  architecture, audio-range random weights: no clipping; waveform_bounds.py, rule 2).
- Frames handed out on a consumer stream equal the frames cloned on the generating stream token for token
  (greedy, float64, several pipelines), also while the consumer stream is kept busy (torch.cuda._sleep), so
  that its clones run long after the generating stream has launched the replays that rewrite their ring
  slots: only the read events hold those rewrites back.
- Streamed audio, chunks of 1 then 4 and of 1 then 1: with the side stream == without it == the full
  non-streaming decode (float64 engines: waveform_bounds.py, rule 1). Utterances back to back, EOS inside a
  chunk, a cancel and a close in the middle each followed by a clean utterance, the prefetch thread, a
  voice-clone prefix, a text split into pieces.
- The same frames and audio on the full-size 0.6B architecture (random weights,
  bench/full_size_checkpoint.py).
"""

import contextlib
import copy
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_frame_generator import EOS_REQUEST, LONG_REQUEST  # greedy on CPU: EOS after 8 frames / no EOS
from waveform_bounds import assert_as_accurate, assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.audio.causal_codec import CausalCodecDecoder
from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder
from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME, SamplingParams, StreamStats

GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=32)
CHUNKINGS = [(1, 4), (1, 1)]  # (first_chunk_frames, chunk_frames)
PIPELINES = [(1, 1), (2, 1), (3, 1), (2, 2), (3, 4)]  # (launch_ahead, frames_per_replay)
BUSY_CYCLES = 10_000_000  # ~5 ms of GPU clock per frame handed out: the consumer falls further behind


def consume(generator, prefill, sampling, consumer=None, busy=False):
    """All frames of one generation, taken on `consumer` (None: the generating stream), -> (n, 16) on CPU."""
    frames = []
    stats = StreamStats()
    for frame in generator.generate(prefill, sampling, stats=stats, consumer_stream=consumer):
        frames.append(frame)
        if busy:
            with torch.cuda.stream(consumer):
                torch.cuda._sleep(BUSY_CYCLES)
    if not frames:
        return torch.zeros(0, 16, dtype=torch.long), stats
    with torch.cuda.stream(consumer) if consumer is not None else contextlib.nullcontext():
        return torch.stack(frames).cpu(), stats


def streamed(engine, request, chunking, **kwargs):
    first, chunk = chunking
    stream = engine.stream(
        request, first_chunk_frames=first, chunk_frames=chunk, pcm_format="float32", **kwargs
    )
    chunks = list(stream)
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    assert all(len(c.pcm) == c.frame_count * SAMPLES_PER_FRAME for c in chunks)
    return np.concatenate([c.pcm for c in chunks]), stream.stats


def check_streams(on, off, request, chunking):
    """One request streamed with and without the side stream, and decoded whole."""
    full = on.synthesize(request)
    got, stats = streamed(on, request, chunking)
    expected, expected_stats = streamed(off, request, chunking)
    assert (stats.frames, stats.stopped_by) == (expected_stats.frames, expected_stats.stopped_by)
    assert_same_audio(got, expected, f"side stream vs main stream {chunking} {stats.stopped_by}")
    assert_same_audio(got, full, f"side stream vs full {chunking} {stats.stopped_by}")
    return stats


def check_interruptions(on, off, requests):
    """Back to back, cancel, close, prefetch: every clean utterance after them equals the reference."""
    references = [streamed(off, request, (1, 4))[0] for request in requests]
    for request, reference in zip(requests + requests, references + references):
        assert_same_audio(streamed(on, request, (1, 4))[0], reference, "back to back")
    cancel = threading.Event()
    chunks = []
    for chunk in on.stream(requests[0], first_chunk_frames=1, chunk_frames=2, cancel=cancel):
        chunks.append(chunk)
        if len(chunks) == 2:
            cancel.set()  # frames launched ahead and handed out to the side stream are dropped
    assert chunks[-1].is_final and chunks[-1].frame_count == 0 and len(chunks) == 3
    assert_same_audio(streamed(on, requests[1], (1, 4))[0], references[1], "after a cancel")
    stream = on.stream(requests[0], first_chunk_frames=1, chunk_frames=4)
    next(iter(stream))
    stream.close()  # replays still in flight, the next frames not decoded
    assert_same_audio(streamed(on, requests[0], (1, 4))[0], references[0], "after a close")
    got, _ = streamed(on, requests[1], (1, 4), prefetch_chunks=2)  # producer thread: its own main stream
    assert_same_audio(got, references[1], "prefetch")
    cancel = threading.Event()
    for _ in on.stream(requests[0], cancel=cancel, prefetch_chunks=1):
        cancel.set()
    assert_same_audio(streamed(on, requests[0], (1, 1))[0], references[0], "after a prefetch cancel")


def greedy(request, sampling=GREEDY):
    return replace(request, sampling=sampling)


@pytest.mark.usefixtures("torch_single_thread")
def test_checks_on_cpu(tiny_custom_voice_tts_f64):
    on = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=256)
    off = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=256, codec_stream=False)
    assert on.decode_cuda_stream is None and off.decode_cuda_stream is None  # no streams on the CPU
    short = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=10)
    stats = check_streams(on, off, greedy(EOS_REQUEST), (1, 4))
    assert stats.stopped_by == "eos" and stats.frames % 4 != 1  # EOS inside the second or a later chunk
    check_interruptions(on, off, [greedy(LONG_REQUEST, short), greedy(EOS_REQUEST, short)])
    with pytest.raises(ValueError, match="CUDA"):
        prefill = build_prefill(on.model, on.processor, greedy(EOS_REQUEST))
        on.frame_generator.generate(prefill, GREEDY, consumer_stream=object())


# -- CUDA ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cuda_tts(cuda_custom_voice_tts_f64):
    return cuda_custom_voice_tts_f64


@pytest.fixture(scope="module")
def cuda_engines(cuda_tts):
    on = Qwen3TTSCudaGraphs(cuda_tts, max_seq_len=256)
    off = Qwen3TTSCudaGraphs(cuda_tts, max_seq_len=256, codec_stream=False)
    assert on.decode_cuda_stream is not None and off.decode_cuda_stream is None
    assert on.codec.stream is on.decode_cuda_stream
    assert on.capture() > 0 and off.capture() > 0
    yield on, off
    on.close()
    off.close()


@pytest.mark.gpu
def test_codec_on_its_own_stream(no_tf32):
    import test_codec_gpu as codec_test

    decoder = random_speech_decoder("released", seed=0).to("cuda")
    n = codec_test.PREFIX + codec_test.FRAMES
    seeded = torch.Generator().manual_seed(0)
    codes = torch.randint(0, decoder.config.codebook_size, (n, 16), generator=seeded)
    codes = codes.cuda()  # a blocking copy: complete before the codec's stream reads it
    codec = CausalCodecDecoder(decoder, stream=torch.cuda.Stream(priority=-1))
    assert codec.capture() > 0
    theirs = codec_test.full_decode(decoder, codes)
    exact = codec_test.full_decode(copy.deepcopy(decoder).to(torch.float64), codes)
    for sizes in ([1, 4], [1, 1], [3, 7]):
        got = codec_test.stream(codec, codes, sizes)
        assert_as_accurate(got, theirs, exact, f"own stream {sizes}")


@pytest.mark.gpu
@pytest.mark.parametrize("launch_ahead,frames_per_replay", PIPELINES)
def test_frames_on_a_consumer_stream(cuda_tts, launch_ahead, frames_per_replay):
    prefills = [build_prefill(cuda_tts.model, cuda_tts.processor, r) for r in (LONG_REQUEST, EOS_REQUEST)]
    generator = FrameGenerator(
        cuda_tts.model,
        FrameOptions(max_seq_len=256, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay),
    )
    consumer = torch.cuda.Stream()
    for prefill in prefills + prefills:
        expected, expected_stats = consume(generator, prefill, GREEDY)
        for busy in (False, True):
            got, stats = consume(generator, prefill, GREEDY, consumer, busy)
            print(launch_ahead, frames_per_replay, busy, stats.stopped_by, len(got))
            assert stats.stopped_by == expected_stats.stopped_by
            assert torch.equal(got, expected), (launch_ahead, frames_per_replay, busy)


@pytest.mark.gpu
@pytest.mark.parametrize("chunking", CHUNKINGS, ids=str)
def test_stream_on_the_side_stream(cuda_engines, chunking, no_tf32):
    on, off = cuda_engines
    for request in (LONG_REQUEST, EOS_REQUEST):
        check_streams(on, off, greedy(request), chunking)


@pytest.mark.gpu
def test_interruptions_on_the_side_stream(cuda_engines, no_tf32):
    on, off = cuda_engines
    check_interruptions(on, off, [greedy(LONG_REQUEST), greedy(EOS_REQUEST)])


@pytest.mark.gpu
def test_voice_clone_prefix_and_split_text(tiny_base_dir, tiny_custom_voice_dir, reference_audio, no_tf32):
    """The reference codes (put on the device on the main stream) and a chunk spanning two text pieces."""
    base = load_qwen_tts(tiny_base_dir, device="cuda", dtype=torch.float64)
    on, off = (Qwen3TTSCudaGraphs(base, max_seq_len=256, codec_stream=flag) for flag in (True, False))
    prompt = on.create_voice_prompt(reference_audio, ref_text="Reference words.")
    (request,) = on.voice_clone_requests("Cloned speech.", voice_clone_prompt=prompt)
    request = greedy(request)
    for chunking in CHUNKINGS:
        side, main = streamed(on, request, chunking)[0], streamed(off, request, chunking)[0]
        assert_same_audio(side, main, "voice clone")
    custom = load_qwen_tts(tiny_custom_voice_dir, device="cuda", dtype=torch.float64)
    on, off = (Qwen3TTSCudaGraphs(custom, max_seq_len=96, codec_stream=flag) for flag in (True, False))
    (request,) = on.custom_voice_requests("First part of it. Then the second part! And a third.", "vivian")
    request = greedy(request)
    assert len(on.text_pieces(request)) > 1
    check_streams(on, off, request, (1, 3))


@pytest.mark.gpu
def test_full_size(tmp_path, no_tf32):
    """Released 0.6B architecture, random weights, float64 (audio compared by rule 1), greedy, EOS kept out:
    40 frames."""
    from bench.full_size_checkpoint import write_full_size_checkpoint  # the repository root is on sys.path

    tts = load_qwen_tts(write_full_size_checkpoint(tmp_path, "0b6"), device="cuda", dtype=torch.float64)
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=41, min_new_tokens=41
    )
    on, off = (Qwen3TTSCudaGraphs(tts, max_seq_len=256, codec_stream=flag) for flag in (True, False))
    (request,) = on.custom_voice_requests(
        "A full size check.", on.get_supported_speakers()[0], "english", **vars(sampling)
    )
    prefill = build_prefill(tts.model, tts.processor, request)
    expected, _ = consume(on.frame_generator, prefill, sampling)
    assert expected.shape == (40, 16)
    got, _ = consume(on.frame_generator, prefill, sampling, on.decode_cuda_stream, busy=True)
    assert torch.equal(got, expected)
    for chunking in CHUNKINGS:
        stats = check_streams(on, off, request, chunking)
        median_ms = sorted(stats.frame_ms)[len(stats.frame_ms) // 2]
        print(chunking, f"median {median_ms:.3f} ms/frame, first audio {stats.time_to_first_audio_ms:.1f} ms")
    on.close()
    off.close()
    del tts
    torch.cuda.empty_cache()
