"""PCM sample formats of streamed audio (numpy only: the node's output path uses it without torch)."""

from __future__ import annotations

import numpy as np

PCM_FORMATS = ("int16", "float32")


def float_to_int16(wav: np.ndarray) -> np.ndarray:
    """float samples, full scale [-1, 1] (clipped there) -> int16 with full scale 32767 (symmetric)."""
    return np.round(np.clip(wav.astype(np.float32, copy=False), -1.0, 1.0) * 32767.0).astype(np.int16)


def to_pcm(wav: np.ndarray, pcm_format: str) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 (float_to_int16) or float32 samples."""
    if pcm_format == "float32":
        return wav.astype(np.float32, copy=False)
    return float_to_int16(wav)
