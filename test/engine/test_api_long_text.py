"""Text too long for max_seq_len: split at sentence boundaries, pieces generated in order, never cut."""

import numpy as np
import pytest
import torch
from waveform_bounds import assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs, SamplingParams, SpeechRequest
from qwen3_tts_ros.engine.audio.codec import decode_full

pytestmark = pytest.mark.usefixtures("torch_single_thread")
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=4)
LONG_TEXT = "Hi there. Good day. See you."
PIECES = ["Hi there.", "Good day.", "See you."]


@pytest.fixture(scope="module")
def short_engine(tiny_custom_voice_tts):
    # The tiny tokenizer is byte-level (one token per byte): the non-streaming custom-voice prompt without
    # text takes 13 positions, so 60 positions leave (60 - 13) // 5 = 9 text tokens per piece.
    return Qwen3TTSCudaGraphs(tiny_custom_voice_tts, max_seq_len=60)


@pytest.fixture(scope="module")
def short_engine_f64(tiny_custom_voice_tts_f64):
    # float64: the streamed and the whole decode are compared for exactness (waveform_bounds.py, rule 1)
    return Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=60)


def _request(text, **sampling):
    return SpeechRequest(
        text=text,
        mode="custom_voice",
        speaker="vivian",
        language="english",
        sampling=SamplingParams.merged(None, **sampling),
    )


def test_long_text_is_split_at_sentences(short_engine):
    pieces = short_engine.text_pieces(short_engine.normalize(_request(LONG_TEXT)))
    assert [p.text for p in pieces] == PIECES
    fitting = short_engine.text_pieces(short_engine.normalize(_request("Hi there.")))
    assert [p.text for p in fitting] == ["Hi there."]


def test_pieces_generated_in_order_and_concatenated(short_engine, tiny_custom_voice_tts):
    (wav,), sr = short_engine.generate_custom_voice(LONG_TEXT, "vivian", "english", **GREEDY)
    assert sr == 24000
    # Each piece as qwen-tts generates it on its own, concatenated in order: nothing cut, nothing reordered.
    theirs = [
        tiny_custom_voice_tts.generate_custom_voice(piece, "vivian", "english", **GREEDY)[0][0]
        for piece in PIECES
    ]
    assert all(len(w) > 0 for w in theirs)
    np.testing.assert_array_equal(wav, np.concatenate(theirs))


def test_long_text_streams_all_pieces(short_engine_f64, tiny_custom_voice_tts_f64):
    short_engine = short_engine_f64
    generate = short_engine.frame_generator.generate
    frames = []

    def recording_generate(*args, **kwargs):  # record the codes of every piece, in order
        for frame in generate(*args, **kwargs):
            frames.append(frame)
            yield frame

    short_engine.frame_generator.generate = recording_generate
    try:
        stream = short_engine.stream(_request(LONG_TEXT, **GREEDY), pcm_format="float32", chunk_frames=2)
        chunks = list(stream)
    finally:
        del short_engine.frame_generator.generate
    assert len(frames) == stream.stats.frames == 3 * (GREEDY["max_new_tokens"] - 1)
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    assert sum(c.frame_count for c in chunks) == len(frames)
    assert [c.frame_start for c in chunks] == list(np.cumsum([0] + [c.frame_count for c in chunks[:-1]]))
    # Each piece is decoded on its own, as generate_*() decodes it: the stream equals the non-streaming
    # waveform (waveform_bounds.py, rule 1), and the per-piece decode of the recorded codes exactly.
    streamed = np.concatenate([c.pcm for c in chunks])
    (full,), _ = short_engine.generate_custom_voice(LONG_TEXT, "vivian", "english", **GREEDY)
    speech_tokenizer = tiny_custom_voice_tts_f64.model.speech_tokenizer
    pieces = [torch.stack(frames[i : i + 3]) for i in (0, 3, 6)]
    per_piece = np.concatenate([decode_full(speech_tokenizer, codes) for codes in pieces])
    np.testing.assert_array_equal(full, per_piece)
    assert streamed.shape == full.shape == (len(frames) * 1920,)
    assert_same_audio(streamed, full, "long text streamed vs whole")


def test_no_room_for_text_raises(tiny_custom_voice_tts):
    engine = Qwen3TTSCudaGraphs(tiny_custom_voice_tts, max_seq_len=12)
    with pytest.raises(ValueError, match="max_seq_len=12"):
        engine.generate_custom_voice("Hi.", "vivian", "english", **GREEDY)
