"""Text in pieces on CUDA: captured graphs replayed ahead, text rows written between replays, the codec on its
side stream (tiny checkpoints in float64, as test_text_stream.py; skipped without CUDA)."""

import random
import threading

import numpy as np
import pytest
import torch
from stream_reader import StreamReader
from waveform_bounds import assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs, RunawayGuard, TextFeed
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

pytestmark = pytest.mark.gpu
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=40, pcm_format="float32")
TEXT = "Hello world, the GPU speaks while the text is written. Fine!"


@pytest.fixture(scope="module")
def engine(tiny_custom_voice_dir):
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        tiny_custom_voice_dir, device="cuda", dtype=torch.float64, max_seq_len=1024
    )
    assert engine.capture() > 0
    yield engine
    engine.close()


def audio(stream) -> np.ndarray:
    chunks = list(stream)
    assert chunks[-1].is_final
    return np.concatenate([c.pcm for c in chunks])


@pytest.mark.parametrize("chunk_frames", [1, 4])
def test_pieces_equal_whole_text_on_cuda(engine, chunk_frames):
    whole_stream = engine.stream_custom_voice(TEXT, "vivian", "english", non_streaming_mode=False, **GREEDY)
    whole = audio(whole_stream)
    rnd = random.Random(chunk_frames)
    for _ in range(4):
        cuts = sorted(rnd.sample(range(1, len(TEXT)), rnd.randint(1, 20)))
        pieces = [TEXT[a:b] for a, b in zip([0, *cuts], [*cuts, len(TEXT)])]
        feed = TextFeed()

        def produce(pieces=pieces, feed=feed):
            for piece in pieces:
                feed.put(piece)
            feed.close()

        threading.Thread(target=produce, daemon=True).start()
        got = engine.stream_custom_voice(feed, "vivian", "english", chunk_frames=chunk_frames, **GREEDY)
        assert_same_audio(audio(got), whole, f"CUDA pieces {pieces!r}")
        assert got.stats.frames == whole_stream.stats.frames


def test_first_audio_before_the_text_ends_on_cuda(engine):
    first, rest = "Hello world, this is the first part", " and then the rest."
    whole = audio(engine.stream_custom_voice(first + rest, "vivian", "english", non_streaming_mode=False,
                                             **GREEDY))  # fmt: skip
    feed = TextFeed()
    feed.put(first)
    stream = engine.stream_custom_voice(feed, "vivian", "english", **GREEDY)
    reader = StreamReader(stream)
    assert reader.first_audio.wait(EVENT_TIMEOUT_S), "no audio while the text was still being written"
    feed.put(rest)
    feed.close()
    assert reader.done.wait(EVENT_TIMEOUT_S)
    assert_same_audio(np.concatenate([c.pcm for c in reader.chunks]), whole, "CUDA first part, then the rest")


def test_runaway_guard_on_cuda(tiny_custom_voice_dir):
    guard = RunawayGuard(frames_per_token=1.0, min_frames=5)
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        tiny_custom_voice_dir, device="cuda", dtype=torch.float32, max_seq_len=256, runaway=guard
    )
    sampling = dict(GREEDY, max_new_tokens=200, min_new_tokens=199)  # EOS suppressed: it never wins
    stream = engine.stream_custom_voice(list("Run away."), "vivian", "english", **sampling)
    audio(stream)
    assert stream.stats.stopped_by == "runaway" and stream.stats.frames == guard.max_frames(9)
    engine.close()
