"""PCM helpers for the node: the output gain, sample-format conversion and a streaming rational resampler
(numpy only).

The resampler is a windowed-sinc polyphase filter whose state carries across chunks, so resampling a stream
chunk by chunk gives exactly what resampling the whole signal at once gives. It holds back `HALF_TAPS` input
samples of look-ahead (under 1 ms at 24 kHz) until the next chunk or `flush()`."""

from __future__ import annotations

import math

import numpy as np

from qwen3_tts_ros.engine.audio.pcm import float_to_int16

SAMPLE_FORMATS = {"int16": "S16LE", "float32": "F32LE"}
BYTES_PER_SAMPLE = {"int16": 2, "float32": 4}


def to_format(pcm: np.ndarray, pcm_format: str) -> np.ndarray:
    """float32 in [-1, 1] or int16 -> little-endian int16 or float32 array."""
    if pcm_format == "int16":
        if pcm.dtype == np.int16:
            return pcm.astype("<i2", copy=False)
        return float_to_int16(pcm).astype("<i2", copy=False)
    if pcm_format == "float32":
        if pcm.dtype == np.int16:
            return (pcm.astype(np.float32) / 32768.0).astype("<f4")
        return pcm.astype("<f4", copy=False)
    raise ValueError(f"unknown pcm format {pcm_format!r}")


class StreamResampler:
    """Resample a mono float stream from `in_rate` to `out_rate` chunk by chunk."""

    HALF_TAPS = 16  # zero crossings of the sinc on each side (at the lower of the two rates)

    def __init__(self, in_rate: int, out_rate: int):
        g = math.gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g  # output k sits at input position k * down / up
        cutoff = 0.95 * min(1.0, self.up / self.down)  # fraction of the input Nyquist
        self.half = int(math.ceil(self.HALF_TAPS / min(1.0, self.up / self.down)))
        taps = np.arange(-self.half + 1, self.half + 1)  # input offsets relative to floor(position)
        phases = np.arange(self.up) / self.up  # fractional part of the position
        t = taps[None, :] - phases[:, None]  # distance (input samples) of each tap from the output position
        window = np.kaiser(2 * self.half + 1, 8.0)
        w = np.interp(t, np.arange(-self.half, self.half + 1), window)
        self.table = (cutoff * np.sinc(cutoff * t) * w).astype(np.float64)  # (up, 2*half)
        self.taps = taps
        # Input history: starts with `half` zeros so the first outputs see silence before the stream.
        self.buffer = np.zeros(self.half, dtype=np.float64)
        self.offset = -self.half  # stream index of buffer[0]
        self.next_out = 0  # index of the next output sample

    def _emit(self, end_input: int, limit: int | None = None) -> np.ndarray:
        """Outputs whose filter window ends before input index `end_input` (and whose index < `limit`)."""
        # output k uses inputs floor(k*down/up) + taps, the last of which must be < end_input
        last = ((end_input - self.half) * self.up - 1) // self.down
        if limit is not None:
            last = min(last, limit - 1)
        ks = np.arange(self.next_out, last + 1)
        if ks.size == 0:
            return np.zeros(0, dtype=np.float32)
        base = (ks * self.down) // self.up
        phase = (ks * self.down) % self.up
        idx = base[:, None] + self.taps[None, :] - self.offset
        out = np.einsum("kt,kt->k", self.buffer[idx], self.table[phase])
        self.next_out = int(ks[-1]) + 1
        keep_from = (self.next_out * self.down) // self.up - self.half + 1 - self.offset
        if keep_from > 0:
            self.buffer = self.buffer[keep_from:]
            self.offset += keep_from
        return out.astype(np.float32)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        self.buffer = np.concatenate([self.buffer, pcm.astype(np.float64)])
        return self._emit(self.offset + self.buffer.size)

    def flush(self, total_input: int) -> np.ndarray:
        """Emit the remaining outputs, so the whole stream has ceil(total_input * up / down) samples."""
        total_out = -(-total_input * self.up // self.down)
        self.buffer = np.concatenate([self.buffer, np.zeros(self.half, dtype=np.float64)])
        return self._emit(self.offset + self.buffer.size, limit=total_out)


class PcmEncoder:
    """Engine PCM (24 kHz) -> the bytes of the configured output format, rate and gain, one stream at a time.
    The one place where the output gain (output.gain) is applied: to the float samples, before resampling
    and the conversion to the output format (int16 clips at full scale)."""

    def __init__(self, pcm_format: str, in_rate: int, out_rate: int, gain: float = 1.0):
        self.pcm_format = pcm_format
        self.in_rate, self.out_rate = in_rate, out_rate
        self.gain = gain
        self.resampler: StreamResampler | None = None
        self.input_samples = 0

    def passes_int16_through(self) -> bool:
        """Whether int16 engine PCM goes out unchanged (int16 output at the model's rate and unity gain); the
        engine is asked for float32 samples otherwise."""
        return self.pcm_format == "int16" and self.out_rate == self.in_rate and self.gain == 1.0

    def start(self) -> None:
        self.resampler = (
            StreamResampler(self.in_rate, self.out_rate) if self.out_rate != self.in_rate else None
        )
        self.input_samples = 0

    def encode(self, pcm: np.ndarray, final: bool) -> bytes:
        if self.gain != 1.0:
            x = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
            pcm = x * np.float32(self.gain)
        if self.resampler is None:
            return to_format(pcm, self.pcm_format).tobytes()
        x = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        self.input_samples += x.size
        out = self.resampler.process(x)
        if final:
            out = np.concatenate([out, self.resampler.flush(self.input_samples)])
        return to_format(out, self.pcm_format).tobytes()

    @property
    def sample_format(self) -> str:
        return SAMPLE_FORMATS[self.pcm_format]

    @property
    def bitrate(self) -> int:
        return self.out_rate * 8 * BYTES_PER_SAMPLE[self.pcm_format]
