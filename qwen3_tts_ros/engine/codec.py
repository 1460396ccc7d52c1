"""Speech-tokenizer (12 Hz codec) decoding: whole utterances as qwen-tts does, and frame chunks for streaming.

The 12 Hz decoder is causal (causal convolutions, causal attention with a 72-frame sliding window), so a
prefix of the codes decodes without look-ahead. Streaming decodes each new chunk together with up to
`left_context_frames` already-decoded frames and drops those frames' samples: every new frame gives exactly
SAMPLES_PER_FRAME samples. With finite left context this is an approximation of the full decode (the
attention window and the convolution stack reach further back than 25 frames); test_codec.py measures it
and states the tolerance. `decode_full` is qwen-tts's own `speech_tokenizer.decode`, so non-streaming
waveforms equal qwen-tts's.
"""

from __future__ import annotations

import numpy as np
import torch

from .types import SAMPLES_PER_FRAME


def decode_full(speech_tokenizer, codes: torch.Tensor) -> np.ndarray:
    """(T, 16) codes -> float32 waveform of T * 1920 samples, exactly as qwen-tts decodes."""
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    wavs, _ = speech_tokenizer.decode([{"audio_codes": codes}])
    return wavs[0]


class StreamingDecoder:
    """Decodes one utterance chunk by chunk, re-reading `left_context_frames` frames of history per chunk.

    `prefix` (e.g. voice-clone reference codes) is history only: it conditions the first chunks but its
    samples are never returned.
    """

    def __init__(
        self, speech_tokenizer, *, left_context_frames: int = 25, prefix: torch.Tensor | None = None
    ):
        if left_context_frames < 0:
            raise ValueError(f"left_context_frames must be >= 0, got {left_context_frames}")
        self.decoder = speech_tokenizer.model.decoder
        self.device = speech_tokenizer.device
        self.left_context_frames = left_context_frames
        self.upsample = int(self.decoder.total_upsample)
        if self.upsample != SAMPLES_PER_FRAME:
            raise ValueError(f"codec gives {self.upsample} samples per frame, expected {SAMPLES_PER_FRAME}")
        self._history = torch.zeros(0, 16, dtype=torch.long, device=self.device)
        if prefix is not None and left_context_frames > 0:
            self._history = prefix.to(self.device, torch.long)[-left_context_frames:]

    @torch.inference_mode()
    def decode(self, frames: torch.Tensor) -> np.ndarray:
        """(n, 16) new frames -> float32 waveform of exactly n * 1920 samples."""
        n = frames.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        frames = frames.to(self.device, torch.long)
        context = self._history.shape[0]
        codes = torch.cat([self._history, frames]).clamp(min=0)  # qwen-tts clamps (pad -1) the same way
        wav = self.decoder(codes.transpose(0, 1).unsqueeze(0))[0, 0, context * self.upsample :]
        keep = self.left_context_frames
        self._history = codes[-keep:] if keep else codes[:0]
        return wav.to(torch.float32).cpu().numpy()
