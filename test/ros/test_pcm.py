"""The node's PCM helpers: sample-format conversion and the streaming resampler."""
import numpy as np
import pytest

from qwen3_tts_ros.node.pcm import PcmEncoder, StreamResampler, to_format


def _sine(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("out_rate", [8000, 16000, 22050, 44100, 48000])
def test_resampling_chunk_by_chunk_equals_whole_and_is_accurate(out_rate):
    x = _sine(24000, 1.0)
    whole_r = StreamResampler(24000, out_rate)
    whole = np.concatenate([whole_r.process(x), whole_r.flush(x.size)])
    chunked_r = StreamResampler(24000, out_rate)
    parts = [chunked_r.process(c) for c in np.split(x, [1920, 1920 * 2, 1920 * 6, 20000])]
    chunked = np.concatenate([*parts, chunked_r.flush(x.size)])
    assert whole.size == x.size * out_rate // 24000
    np.testing.assert_array_equal(chunked, whole)
    expected = _sine(out_rate, 1.0)
    assert np.abs(whole - expected)[100:-100].max() < 3e-3  # edges: the stream starts/ends with silence
    # Look-ahead held back per chunk is tiny: every chunk but the first yields about its share.
    assert abs(parts[1].size - 1920 * out_rate / 24000) <= 2


def test_downsampling_removes_content_above_the_new_nyquist():
    x = _sine(24000, 1.0, hz=10000.0)  # above 8 kHz Nyquist of 16 kHz
    r = StreamResampler(24000, 16000)
    y = np.concatenate([r.process(x), r.flush(x.size)])
    assert np.abs(y[200:-200]).max() < 0.02


def test_format_conversion_round_trip():
    f = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5], dtype=np.float32)
    i = to_format(f, "int16")
    assert i.dtype == np.dtype("<i2")
    np.testing.assert_array_equal(i, [-32767, -16384, 0, 16384, 32767, 32767])  # clipped
    back = to_format(i, "float32")
    np.testing.assert_allclose(back[:5], f[:5], atol=1 / 32768 + 1e-7)
    assert to_format(i, "int16").tobytes() == i.tobytes()


def test_encoder_passthrough_and_resampled_stream_lengths():
    pcm = (np.arange(1920 * 3) % 200 - 100).astype(np.int16)
    enc = PcmEncoder("int16", 24000, 24000)
    enc.start()
    assert enc.encode(pcm, final=False) == pcm.astype("<i2").tobytes()
    assert (enc.sample_format, enc.bitrate) == ("S16LE", 24000 * 16)
    enc = PcmEncoder("float32", 24000, 16000)
    enc.start()
    total = sum(len(enc.encode(pcm[k:k + 1920], final=(k == 1920 * 2))) for k in range(0, pcm.size, 1920))
    assert total == 1280 * 3 * 4  # exactly frames * 1280 float32 samples over the whole stream
    assert (enc.sample_format, enc.bitrate) == ("F32LE", 16000 * 32)


@pytest.mark.parametrize("pcm_format,out_rate", [("int16", 24000), ("float32", 24000), ("int16", 16000)])
def test_encoder_gain_scales_the_float_samples_before_resampling_and_conversion(pcm_format, out_rate):
    x = _sine(24000, 0.3) * 1.8  # peaks at 0.9
    plain, scaled = PcmEncoder(pcm_format, 24000, out_rate), PcmEncoder(pcm_format, 24000, out_rate, gain=0.5)
    assert plain.passes_int16_through() == (pcm_format == "int16" and out_rate == 24000)
    assert not scaled.passes_int16_through()
    plain.start()
    scaled.start()
    # Linear: gain 0.5 on x is the plain encoding of x * 0.5 (exact: halving a float32 is exact).
    assert scaled.encode(x, final=True) == plain.encode(x * np.float32(0.5), final=True)
    loud = PcmEncoder("int16", 24000, 24000, gain=4.0)
    loud.start()
    out = np.frombuffer(loud.encode(x, final=True), dtype="<i2")
    assert out.max() == 32767 and out.min() == -32767  # clipped at full scale
