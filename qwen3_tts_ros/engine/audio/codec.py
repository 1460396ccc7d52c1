"""Speech-tokenizer (12 Hz codec) decoding: whole utterances as qwen-tts does, and frame chunks for streaming.

`decode_full` is qwen-tts's own `speech_tokenizer.decode`, so non-streaming waveforms equal qwen-tts's.
Streaming runs `CausalCodecDecoder` (causal_codec.py), which carries the causal decoder's state from chunk
to chunk: the streamed samples equal `decode_full` of the whole sequence to float rounding, for any
chunking (test_api_codec.py states the measured figure). Every new frame gives exactly SAMPLES_PER_FRAME
samples.
"""

from __future__ import annotations

import numpy as np
import torch

from ..types import SAMPLES_PER_FRAME
from .causal_codec import CausalCodecDecoder


def decode_full(speech_tokenizer, codes: torch.Tensor) -> np.ndarray:
    """(T, 16) codes -> float32 waveform of T * 1920 samples, exactly as qwen-tts decodes."""
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    wavs, _ = speech_tokenizer.decode([{"audio_codes": codes}])
    return wavs[0]


class StreamingDecoder:
    """Decodes one utterance chunk by chunk on a (shared) CausalCodecDecoder.

    `prefix` (e.g. voice-clone reference codes) is history only: it conditions the decode but its samples
    are never returned. The codec's state is claimed at the first `decode`, not at construction, so the
    next utterance's decoder can be set up while the previous one still decodes its last frames; once
    another StreamingDecoder has claimed the codec, `decode` raises.
    """

    def __init__(self, codec: CausalCodecDecoder, *, prefix: torch.Tensor | None = None):
        if codec.samples_per_frame != SAMPLES_PER_FRAME:
            raise ValueError(
                f"codec gives {codec.samples_per_frame} samples per frame, expected {SAMPLES_PER_FRAME}"
            )
        self.codec = codec
        self.prefix = prefix
        self._started = False

    def decode(self, frames: torch.Tensor) -> np.ndarray:
        """(n, 16) new frames -> float32 waveform of exactly n * 1920 samples."""
        if frames.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if not self._started:
            self.codec.start(self.prefix)
            self.codec.owner = self
            self._started = True
        elif self.codec.owner is not self:
            raise RuntimeError("the codec moved on to another utterance; this one cannot continue")
        return self.codec.decode(frames)
