"""Streaming codec decode (CausalCodecDecoder: carried causal state) vs qwen-tts's whole-sequence decode.

For any chunking (1,1,1...; 1 then 4s; 3s; 7s; one chunk), with or without a voice-clone prefix, across the
72-frame attention window and across qwen-tts's 300-frame decode segments, the streamed samples equal
qwen-tts's `speech_tokenizer.decode` of the whole sequence. Two rules (waveform_bounds.py):
- in float64 the two are equal to float64 rounding and qwen-tts's two float32 steps (rule 1, per sample
  <= EXACT_BOUND): the carried state is exact;
- in float32, on audio-range random codecs (waveform std ~0.2, see tiny_checkpoint.write_speech_tokenizer),
  the stream is as close to the float64 decode as qwen-tts's own float32 decode is (rule 2).
The tiny model checkpoints' own codec clips nearly every sample at +-1 (random weights of huge gain), so it
is compared in float64 only.
"""

import numpy as np
import pytest
import torch
from waveform_bounds import assert_as_accurate, assert_same_audio

from qwen3_tts_ros.engine.audio.causal_codec import SEGMENT_FRAMES, CausalCodecDecoder
from qwen3_tts_ros.engine.audio.codec import StreamingDecoder, decode_full
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder, write_speech_tokenizer
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def audio_range_dir(tmp_path_factory):
    return write_speech_tokenizer(tmp_path_factory.mktemp("codec"), size="tiny", seed=3, audio_range=True)


def load_tokenizer(path, dtype):
    """The codec loaded through qwen-tts's own tokenizer loader."""
    from qwen_tts import Qwen3TTSTokenizer

    return Qwen3TTSTokenizer.from_pretrained(str(path), device_map="cpu", dtype=dtype)


@pytest.fixture(scope="module")
def audio_range_tokenizer(audio_range_dir):
    return load_tokenizer(audio_range_dir, torch.float32)


@pytest.fixture(scope="module")
def audio_range_tokenizer_f64(audio_range_dir):
    return load_tokenizer(audio_range_dir, torch.float64)


@pytest.fixture(scope="module")
def audio_range_codec(audio_range_tokenizer):
    return CausalCodecDecoder(audio_range_tokenizer.model.decoder)


@pytest.fixture(scope="module")
def audio_range_codec_f64(audio_range_tokenizer_f64):
    return CausalCodecDecoder(audio_range_tokenizer_f64.model.decoder)


@pytest.fixture(scope="module")
def checkpoint_tokenizer(tiny_voice_design_tts):
    return tiny_voice_design_tts.model.speech_tokenizer


def random_codes(n, seed, codebook_size):
    return torch.randint(0, codebook_size, (n, 16), generator=torch.Generator().manual_seed(seed))


def stream(codec, codes, sizes, prefix=None):
    """Decode `codes` in chunks of sizes[0], sizes[1], ..., then sizes[-1] repeated."""
    codec.start(prefix)
    pieces, begin = [], 0
    while begin < len(codes):
        size = sizes[min(len(pieces), len(sizes) - 1)]
        piece = codec.decode(codes[begin : begin + size])
        assert piece.dtype == np.float32
        assert len(piece) == len(codes[begin : begin + size]) * SAMPLES_PER_FRAME
        pieces.append(piece)
        begin += size
    return np.concatenate(pieces)


def icl_part(speech_tokenizer, prefix, codes):
    """qwen-tts's voice-clone output: decode reference ++ generated, cut the reference's share."""
    wav = decode_full(speech_tokenizer, torch.cat([prefix, codes]))
    return wav[int(len(prefix) / (len(prefix) + len(codes)) * len(wav)) :]


def test_full_decode_is_qwen_tts_decode(checkpoint_tokenizer):
    codes = random_codes(7, 3, checkpoint_tokenizer.model.decoder.config.codebook_size)
    wav = decode_full(checkpoint_tokenizer, codes)
    ref, sr = checkpoint_tokenizer.decode({"audio_codes": [codes]})
    assert sr == 24000 and len(wav) == 7 * SAMPLES_PER_FRAME
    np.testing.assert_array_equal(wav, ref[0])
    assert len(decode_full(checkpoint_tokenizer, codes[:0])) == 0


def test_audio_range_codec_does_not_clip(audio_range_tokenizer):
    wav = decode_full(audio_range_tokenizer, random_codes(20, 0, 64))
    assert 0.05 < wav.std() < 0.5 and (np.abs(wav) >= 1).mean() < 1e-3


def test_decoder_is_causal(audio_range_tokenizer_f64):
    # What streaming relies on: a shorter decode is exactly a prefix of a longer one (rule 1).
    codes = random_codes(40, 9, 64)
    longer = decode_full(audio_range_tokenizer_f64, codes)
    shorter = decode_full(audio_range_tokenizer_f64, codes[:31])
    assert_same_audio(shorter, longer[: len(shorter)], "31 frames vs the first 31 of 40")


def check_stream(codecs, tokenizers, codes, sizes, what):
    """codecs / tokenizers: (float32, float64). Rule 1 in float64, rule 2 in float32."""
    (codec32, codec64), (tokenizer32, tokenizer64) = codecs, tokenizers
    exact = decode_full(tokenizer64, codes)
    assert_same_audio(stream(codec64, codes, sizes), exact, f"float64 {what}")
    theirs = decode_full(tokenizer32, codes)
    assert_as_accurate(stream(codec32, codes, sizes), theirs, exact, f"float32 {what}")


@pytest.fixture(scope="module")
def audio_range(audio_range_codec, audio_range_codec_f64, audio_range_tokenizer, audio_range_tokenizer_f64):
    return (audio_range_codec, audio_range_codec_f64), (audio_range_tokenizer, audio_range_tokenizer_f64)


@pytest.mark.parametrize("sizes", [[1], [1, 4], [3], [7], [200]], ids=str)
def test_stream_equals_full_decode_across_the_window(audio_range, sizes):
    codes = random_codes(200, 1, 64)  # > 72 frames: the attention window slides
    check_stream(*audio_range, codes, sizes, f"chunks {sizes}")


@pytest.mark.parametrize("sizes", [[1, 4], [7]], ids=str)
def test_stream_follows_qwen_tts_300_frame_segments(audio_range, sizes):
    # qwen-tts decodes in 300-frame segments with 25 frames of context; chunks straddle 300 and 600 here.
    codes = random_codes(2 * SEGMENT_FRAMES + 50, 2, 64)
    check_stream(*audio_range, codes, sizes, f"segments, chunks {sizes}")


@pytest.mark.parametrize(
    "prefix_frames,frames,sizes",
    [
        (10, 30, [1, 4]),
        (100, 50, [1, 3]),  # prefix longer than the attention window and the conv receptive field
        (290, 40, [1, 4]),  # the first segment boundary comes right after the prefix
        (310, 20, [4]),  # the prefix itself crosses a segment boundary
    ],
)
def test_prefix_conditions_but_is_not_returned(audio_range, prefix_frames, frames, sizes):
    codes = random_codes(prefix_frames + frames, prefix_frames, 64)
    prefix, generated = codes[:prefix_frames], codes[prefix_frames:]
    (codec32, codec64), (tokenizer32, tokenizer64) = audio_range
    exact = icl_part(tokenizer64, prefix, generated)
    theirs = icl_part(tokenizer32, prefix, generated)
    streamed64 = stream(codec64, generated, sizes, prefix=prefix)
    # the proportional cut can keep one extra sample of the reference part (float rounding): align ends
    assert 0 <= len(exact) - len(streamed64) <= 1 and 0 <= len(theirs) - len(streamed64) <= 1
    assert_same_audio(streamed64, exact[len(exact) - len(streamed64) :], "float64 after a prefix")
    streamed32 = stream(codec32, generated, sizes, prefix=prefix)
    n = len(streamed32)
    assert_as_accurate(streamed32, theirs[len(theirs) - n :], exact[len(exact) - n :],
                       "float32 after a prefix")


def test_start_resets_the_state(audio_range_codec):
    codes = random_codes(12, 4, 64)
    first = stream(audio_range_codec, codes, [5])
    stream(audio_range_codec, random_codes(30, 5, 64), [4])
    np.testing.assert_array_equal(stream(audio_range_codec, codes, [5]), first)


@pytest.mark.parametrize("sizes", [[1, 4], [40]], ids=str)
def test_tiny_checkpoint_codec(tiny_voice_design_dir, sizes):
    """The tiny model checkpoints' codec itself (clips nearly everywhere), in float64: rule 1."""
    tokenizer = load_tokenizer(tiny_voice_design_dir / "speech_tokenizer", torch.float64)
    codes = random_codes(40, 6, 64)
    streamed = stream(CausalCodecDecoder(tokenizer.model.decoder), codes, sizes)
    assert_same_audio(streamed, decode_full(tokenizer, codes), f"checkpoint codec, chunks {sizes}")


def test_released_architecture():
    """The released codec architecture (random audio-range weights) against qwen-tts's chunked_decode."""
    decoder32 = random_speech_decoder("released", seed=0)
    decoder64 = random_speech_decoder("released", seed=0).to(torch.float64)
    codes = random_codes(24, 7, decoder32.config.codebook_size)
    with torch.inference_mode():  # what Qwen3TTSTokenizerV2Model.decode runs for valid codes
        theirs = decoder32.chunked_decode(codes.T[None])[0, 0].numpy()
        exact = decoder64.chunked_decode(codes.T[None])[0, 0].float().numpy()
    codec32, codec64 = CausalCodecDecoder(decoder32), CausalCodecDecoder(decoder64)
    assert_same_audio(stream(codec64, codes, [1, 4]), exact, "released, float64")
    assert_as_accurate(stream(codec32, codes, [1, 4]), theirs, exact, "released, float32")
    tail = 10 * SAMPLES_PER_FRAME
    assert_same_audio(stream(codec64, codes[10:], [3], prefix=codes[:10]), exact[tail:],
                      "released, float64, after a prefix")
    assert_as_accurate(stream(codec32, codes[10:], [3], prefix=codes[:10]), theirs[tail:], exact[tail:],
                       "released, float32, after a prefix")


def test_streaming_decoders_take_the_codec_in_turn(audio_range_codec):
    prefix, codes = random_codes(6, 10, 64), random_codes(9, 11, 64)
    first = StreamingDecoder(audio_range_codec, prefix=prefix)
    second = StreamingDecoder(audio_range_codec)  # set up before the first one decodes: no effect yet
    expected_first = np.concatenate([first.decode(codes[:4]), first.decode(codes[4:])])
    np.testing.assert_array_equal(expected_first, stream(audio_range_codec, codes, [4, 5], prefix=prefix))
    assert len(first.decode(codes[:0])) == 0
    np.testing.assert_array_equal(second.decode(codes), stream(audio_range_codec, codes, [9]))
    with pytest.raises(RuntimeError, match="another utterance"):
        first.decode(codes[:1])


def test_bad_codes_rejected(audio_range_codec):
    with pytest.raises(ValueError, match="codes"):
        audio_range_codec.decode(torch.zeros(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="codes"):
        audio_range_codec.start(torch.zeros(16, dtype=torch.long))
