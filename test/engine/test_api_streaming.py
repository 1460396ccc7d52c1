"""Qwen3TTSCudaGraphs.stream(): chunking, formats, equality with the non-streaming waveform, cancel, prefetch.

The engines here run the tiny checkpoints in float64, so streamed vs non-streaming audio (the same codes,
decoded in chunks vs whole) is compared for exactness: waveform_bounds.py, rule 1 (per sample <= EXACT_BOUND).
Float32 rounding of the streaming codec is tested on its own in test_api_codec.py (rule 2).
"""

import threading
import time

import numpy as np
import pytest
from waveform_bounds import EXACT_BOUND, assert_same_audio

from qwen3_tts_ros.engine import PcmChunk, Qwen3TTSCudaGraphs, SpeechRequest, StreamStats
from qwen3_tts_ros.engine.types import MODE_OF_MODEL_TYPE, SAMPLES_PER_FRAME

FRAMES = 11  # max_new_tokens - 1
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=FRAMES + 1)
TEXT = "Hello world, this is a streaming test."


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def engine(tiny_custom_voice_tts_f64):
    return Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=256)


@pytest.fixture(scope="module")
def request_(engine):
    # eos_token_id is never reached within FRAMES for this text (checked below via stats.stopped_by)
    return engine.custom_voice_requests(TEXT, "vivian", "english", **GREEDY)[0]


@pytest.fixture(scope="module")
def full_wave(engine, request_):
    return engine.synthesize(request_)


def check_chunks(chunks: list[PcmChunk], dtype, first_chunk_frames: int, chunk_frames: int) -> int:
    assert chunks and chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    frame = 0
    for i, chunk in enumerate(chunks):
        assert chunk.pcm.dtype == dtype and chunk.pcm.ndim == 1
        assert chunk.sample_rate == 24000
        assert chunk.frame_start == frame
        assert len(chunk.pcm) == chunk.frame_count * SAMPLES_PER_FRAME
        if not chunk.is_final:
            assert chunk.frame_count == (first_chunk_frames if i == 0 else chunk_frames)
        else:
            assert chunk.frame_count <= (first_chunk_frames if i == 0 else chunk_frames)
        frame += chunk.frame_count
    return frame


@pytest.mark.parametrize("first_chunk_frames,chunk_frames", [(1, 4), (4, 4), (1, 3)])
def test_stream_equals_non_streaming(engine, request_, full_wave, first_chunk_frames, chunk_frames):
    stream = engine.stream(
        request_, first_chunk_frames=first_chunk_frames, chunk_frames=chunk_frames, pcm_format="float32"
    )
    chunks = list(stream)
    frames = check_chunks(chunks, np.float32, first_chunk_frames, chunk_frames)
    assert frames == FRAMES == len(full_wave) // SAMPLES_PER_FRAME
    assert_same_audio(np.concatenate([c.pcm for c in chunks]), full_wave, "streamed vs whole")
    stats: StreamStats = stream.stats
    assert stats.frames == FRAMES and len(stats.frame_ms) == FRAMES
    assert stats.stopped_by == "max_new_tokens"
    assert stats.audio_seconds == pytest.approx(FRAMES * 0.08)
    assert 0 < stats.time_to_first_audio_ms <= stats.total_s * 1000
    assert stats.prefill_ms > 0 and stats.decode_ms_total > 0
    assert stats.text_length == len(TEXT)
    assert chunks[0].decoded_at_s >= chunks[0].generated_at_s > 0


def test_int16_is_scaled_float32(engine, request_, full_wave):
    chunks = list(engine.stream(request_, first_chunk_frames=1, chunk_frames=4, pcm_format="int16"))
    assert check_chunks(chunks, np.int16, 1, 4) == FRAMES
    pcm = np.concatenate([c.pcm for c in chunks]).astype(np.float64) / 32767
    # int16 rounding (half a step) on top of rule 1's bound
    assert np.abs(pcm - full_wave).max() <= 0.5 / 32767 + EXACT_BOUND


def test_cancel_mid_stream_ends_with_final_chunk(engine, request_):
    cancel = threading.Event()
    chunks = []
    stream = engine.stream(request_, first_chunk_frames=1, chunk_frames=2, cancel=cancel)
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 2:
            cancel.set()
    assert chunks[-1].is_final and chunks[-1].frame_count == 0 and len(chunks[-1].pcm) == 0
    assert chunks[-1].frame_start == sum(c.frame_count for c in chunks[:-1]) == 3
    assert stream.stats.stopped_by == "cancelled"
    # the engine is free again afterwards
    assert len(list(engine.stream(request_, first_chunk_frames=4, chunk_frames=8))) >= 2


def test_abandoned_stream_releases_generator(engine, request_):
    stream = engine.stream(request_)
    next(iter(stream))
    stream.close()
    assert sum(c.frame_count for c in engine.stream(request_, chunk_frames=16)) == FRAMES


def test_prefetch_with_slow_consumer_gives_same_audio(engine, request_):
    reference = np.concatenate([c.pcm for c in engine.stream(request_, pcm_format="float32")])
    stream = engine.stream(
        request_, pcm_format="float32", first_chunk_frames=1, chunk_frames=2, prefetch_chunks=8
    )
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if len(chunks) == 1:
            # A player that has not taken the second chunk yet: the producer thread finishes the whole
            # utterance meanwhile (stats.total_s is set just before the final chunk is queued).
            deadline = time.monotonic() + 120
            while stream.stats.total_s == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stream.stats.total_s > 0, "the producer did not run ahead of the reader within 120 s"
    assert check_chunks(chunks, np.float32, 1, 2) == FRAMES
    np.testing.assert_array_equal(np.concatenate([c.pcm for c in chunks]), reference)


def test_prefetch_cancel_and_errors(engine, request_):
    cancel = threading.Event()
    stream = engine.stream(request_, first_chunk_frames=1, chunk_frames=1, prefetch_chunks=1, cancel=cancel)
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        cancel.set()
    assert chunks[-1].is_final and stream.stats.stopped_by == "cancelled"
    assert sum(c.frame_count for c in chunks) < FRAMES


def test_stream_conveniences_and_argument_errors(
    engine, tiny_voice_design_tts, tiny_base_tts, reference_audio
):
    chunks = list(engine.stream_custom_voice(TEXT, "vivian", "english", first_chunk_frames=4, **GREEDY))
    assert check_chunks(chunks, np.int16, 4, 4) == FRAMES
    design = Qwen3TTSCudaGraphs(tiny_voice_design_tts, max_seq_len=256)
    assert sum(c.frame_count for c in design.stream_voice_design("Hi there.", "Calm.", max_new_tokens=4)) <= 3
    base = Qwen3TTSCudaGraphs(tiny_base_tts, max_seq_len=256)
    clone = base.stream_voice_clone(
        "Hi.", ref_audio=reference_audio, x_vector_only_mode=True, max_new_tokens=4
    )
    assert sum(c.frame_count for c in clone) <= 3
    with pytest.raises(ValueError, match="pcm_format"):
        engine.stream(engine.custom_voice_requests("x", "vivian")[0], pcm_format="int8")
    with pytest.raises(ValueError, match="chunk_frames"):
        engine.stream(engine.custom_voice_requests("x", "vivian")[0], first_chunk_frames=0)
    with pytest.raises(ValueError, match="vivian"):
        engine.stream(SpeechRequest(text="x", mode="custom_voice", speaker="nobody"))
    with pytest.raises(ValueError, match="generate_custom_voice"):
        engine.stream(SpeechRequest(text="x", mode="voice_design", instruct="calm"))
    # A list is the pieces of one text (test_text_stream.py), not a batch: streaming takes one text.
    pieces = engine.stream_custom_voice(["Hel", "lo."], "vivian", **GREEDY)
    assert sum(c.frame_count for c in pieces) > 0 and pieces.stats.text_length == len("Hello.")


def test_warmup_and_capture_on_cpu(engine):
    assert engine.capture() == 0.0  # no CUDA graphs on CPU
    assert engine.warmup() > 0


@pytest.mark.parametrize("non_streaming_mode", [False, True])
def test_voice_clone_icl_stream_matches_non_streaming(tiny_base_tts_f64, reference_audio, non_streaming_mode):
    """ICL: the reference codes are decode history only; the streamed audio is the generated part."""
    base = Qwen3TTSCudaGraphs(tiny_base_tts_f64, max_seq_len=256)
    prompt = base.create_voice_prompt(reference_audio, ref_text="Reference words.")
    (request,) = base.voice_clone_requests(
        "Cloned speech.", voice_clone_prompt=prompt, non_streaming_mode=non_streaming_mode, **GREEDY
    )
    full = base.synthesize(request)  # qwen-tts's proportional cut of ref ++ generated
    chunks = list(base.stream(request, pcm_format="float32", first_chunk_frames=1, chunk_frames=4))
    frames = sum(c.frame_count for c in chunks)
    streamed = np.concatenate([c.pcm for c in chunks])
    assert len(streamed) == frames * SAMPLES_PER_FRAME
    # the proportional cut can keep one extra sample of the reference part (float rounding): align ends
    assert 0 <= len(full) - len(streamed) <= 1
    assert_same_audio(streamed, full[len(full) - len(streamed) :], "voice clone streamed vs whole")


@pytest.mark.parametrize("kind", ["base", "custom_voice", "voice_design"])
def test_warmup_every_kind_then_close(tiny_tts_by_kind, kind):
    engine = Qwen3TTSCudaGraphs(tiny_tts_by_kind[kind], max_seq_len=128)
    assert engine.warmup(max_frames=2) > 0
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.stream(SpeechRequest(text="x", mode=MODE_OF_MODEL_TYPE[kind]))


def test_split_text_stream_matches_non_streaming(tiny_custom_voice_tts_f64):
    """A text split for max_seq_len streams piece after piece, each decoded as its own utterance."""
    small = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=96)
    (request,) = small.custom_voice_requests(
        "First part of it. Then the second part! And a third.", "vivian", "english", **GREEDY
    )
    assert len(small.text_pieces(request)) > 1
    blank = SpeechRequest(text=" " * 400, mode="custom_voice", speaker="vivian")
    assert small.text_pieces(blank) == [blank]  # nothing to split at: generated as given
    full = small.synthesize(request)
    chunks = list(small.stream(request, pcm_format="float32", first_chunk_frames=1, chunk_frames=3))
    check_chunks(chunks, np.float32, 1, 3)
    assert_same_audio(np.concatenate([c.pcm for c in chunks]), full, "split text streamed vs whole")


def test_dropped_or_closed_prefetch_stream_frees_the_engine(engine, request_):
    import gc

    with engine.stream(request_, prefetch_chunks=1) as stream:
        next(iter(stream))  # producer is blocked on the full queue, holding the generator
    assert sum(c.frame_count for c in engine.stream(request_, chunk_frames=16)) == FRAMES
    stream = engine.stream(request_, prefetch_chunks=1)  # never iterated, then dropped
    thread = stream._thread
    del stream
    gc.collect()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert sum(c.frame_count for c in engine.stream(request_, chunk_frames=16)) == FRAMES
