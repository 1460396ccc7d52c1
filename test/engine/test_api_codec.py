"""Streaming codec decode (CausalCodecDecoder: carried causal state) vs qwen-tts's whole-sequence decode.

STATED FIGURE (CPU, float32): for any chunking (1,1,1...; 1 then 4s; 3s; 7s; one chunk), with or without a
voice-clone prefix, across the 72-frame attention window and across qwen-tts's 300-frame decode segments,
the streamed samples equal qwen-tts's `speech_tokenizer.decode` of the whole sequence to float rounding:
    max |streamed - full| <= MAX_DIFF = 1e-5
on audio-range random codecs (waveform std ~0.2, see tiny_checkpoint.write_speech_tokenizer). Measured:
tiny codec <= 5.3e-6 (mean ~2e-7), released architecture <= 8.1e-6 (mean ~1.3e-6). That is the level at
which qwen-tts's decode differs from itself when only the sequence length changes (see
test_qwen_tts_own_rounding_floor).
The tiny model checkpoints' own codec clips every sample at +-1 (random weights of huge gain), so rounding
can only show as an isolated clipped sample flipping sign near a zero crossing: there we assert that at
most FLIP_FRACTION of the samples differ by more than MAX_DIFF (measured: none on these sequences).
"""

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine.audio.causal_codec import SEGMENT_FRAMES, CausalCodecDecoder
from qwen3_tts_ros.engine.audio.codec import StreamingDecoder, decode_full
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder, write_speech_tokenizer
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME

pytestmark = pytest.mark.usefixtures("torch_single_thread")
MAX_DIFF = 1e-5
FLIP_FRACTION = 1e-4


@pytest.fixture(scope="module")
def audio_range_tokenizer(tmp_path_factory):
    """The tiny codec with a gain-preserving init, loaded through qwen-tts's own tokenizer loader."""
    from qwen_tts import Qwen3TTSTokenizer

    path = write_speech_tokenizer(tmp_path_factory.mktemp("codec"), size="tiny", seed=3, audio_range=True)
    return Qwen3TTSTokenizer.from_pretrained(str(path), device_map="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def audio_range_codec(audio_range_tokenizer):
    return CausalCodecDecoder(audio_range_tokenizer.model.decoder)


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


def max_diff(streamed, full):
    assert streamed.shape == full.shape
    diff = np.abs(streamed.astype(np.float64) - full)
    print(f"max |diff| {diff.max():.3g}, mean {diff.mean():.3g}")
    return diff.max()


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


def test_qwen_tts_own_rounding_floor(audio_range_tokenizer):
    # The decoder is causal, so a shorter decode is mathematically a prefix of a longer one; float rounding
    # of the differently shaped ops makes them differ at the level our stream differs from the full decode.
    codes = random_codes(40, 9, 64)
    longer = decode_full(audio_range_tokenizer, codes)
    shorter = decode_full(audio_range_tokenizer, codes[:31])
    floor = np.abs(shorter - longer[: len(shorter)]).max()
    print(f"qwen-tts length-change rounding: max |diff| {floor:.3g}")
    assert 0 < floor <= MAX_DIFF


@pytest.mark.parametrize("sizes", [[1], [1, 4], [3], [7], [200]], ids=str)
def test_stream_equals_full_decode_across_the_window(audio_range_tokenizer, audio_range_codec, sizes):
    codes = random_codes(200, 1, 64)  # > 72 frames: the attention window slides
    full = decode_full(audio_range_tokenizer, codes)
    assert max_diff(stream(audio_range_codec, codes, sizes), full) <= MAX_DIFF


@pytest.mark.parametrize("sizes", [[1, 4], [7]], ids=str)
def test_stream_follows_qwen_tts_300_frame_segments(audio_range_tokenizer, audio_range_codec, sizes):
    # qwen-tts decodes in 300-frame segments with 25 frames of context; chunks straddle 300 and 600 here.
    codes = random_codes(2 * SEGMENT_FRAMES + 50, 2, 64)
    full = decode_full(audio_range_tokenizer, codes)
    assert max_diff(stream(audio_range_codec, codes, sizes), full) <= MAX_DIFF


@pytest.mark.parametrize(
    "prefix_frames,frames,sizes",
    [
        (10, 30, [1, 4]),
        (100, 50, [1, 3]),  # prefix longer than the attention window and the conv receptive field
        (290, 40, [1, 4]),  # the first segment boundary comes right after the prefix
        (310, 20, [4]),  # the prefix itself crosses a segment boundary
    ],
)
def test_prefix_conditions_but_is_not_returned(
    audio_range_tokenizer, audio_range_codec, prefix_frames, frames, sizes
):
    codes = random_codes(prefix_frames + frames, prefix_frames, 64)
    prefix, generated = codes[:prefix_frames], codes[prefix_frames:]
    full = icl_part(audio_range_tokenizer, prefix, generated)
    streamed = stream(audio_range_codec, generated, sizes, prefix=prefix)
    # the proportional cut can keep one extra sample of the reference part (float rounding): align ends
    assert 0 <= len(full) - len(streamed) <= 1
    assert max_diff(streamed, full[len(full) - len(streamed) :]) <= MAX_DIFF


def test_start_resets_the_state(audio_range_codec):
    codes = random_codes(12, 4, 64)
    first = stream(audio_range_codec, codes, [5])
    stream(audio_range_codec, random_codes(30, 5, 64), [4])
    np.testing.assert_array_equal(stream(audio_range_codec, codes, [5]), first)


@pytest.mark.parametrize("sizes", [[1, 4], [40]], ids=str)
def test_tiny_checkpoint_codec(checkpoint_tokenizer, sizes):
    """The tiny model checkpoints' codec itself (clips everywhere): all but rare flipped samples equal."""
    codes = random_codes(40, 6, 64)
    full = decode_full(checkpoint_tokenizer, codes)
    streamed = stream(CausalCodecDecoder(checkpoint_tokenizer.model.decoder), codes, sizes)
    differ = (np.abs(streamed.astype(np.float64) - full) > MAX_DIFF).mean()
    print(f"fraction of samples differing by more than {MAX_DIFF}: {differ:.3g}")
    assert differ <= FLIP_FRACTION


def test_released_architecture():
    """The released codec architecture (random audio-range weights) against qwen-tts's chunked_decode."""
    decoder = random_speech_decoder("released", seed=0)
    codec = CausalCodecDecoder(decoder)
    codes = random_codes(24, 7, decoder.config.codebook_size)
    with torch.inference_mode():  # what Qwen3TTSTokenizerV2Model.decode runs for valid codes
        full = decoder.chunked_decode(codes.T[None])[0, 0].numpy()
    assert max_diff(stream(codec, codes, [1, 4]), full) <= MAX_DIFF
    streamed = stream(codec, codes[10:], [3], prefix=codes[:10])
    assert max_diff(streamed, full[10 * SAMPLES_PER_FRAME :]) <= MAX_DIFF


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
