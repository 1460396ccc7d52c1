"""Voice-clone prompts: reference audio encoded once (codec codes + speaker embedding), saved and reused.

The encoding itself is qwen-tts's `create_voice_clone_prompt` (speech-tokenizer encoder + speaker encoder,
librosa resampling to 24 kHz) so prompts equal qwen-tts's; this module adds safe audio loading (no network
unless allowed, clear errors), channel downmixing, and a pickle-free file format (safetensors: tensors plus
string metadata).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import urllib.request
from urllib.parse import urlparse

import numpy as np
import torch

from .types import VoicePrompt

FORMAT_VERSION = "1"


def is_url(source: str) -> bool:
    parsed = urlparse(source)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _is_base64(source: str) -> bool:
    # Same rule as qwen-tts: a data URI, or a long string without path separators.
    return source.startswith("data:audio") or ("/" not in source and "\\" not in source and len(source) > 256)


def _read_audio_bytes(data: bytes, what: str) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with io.BytesIO(data) as f:
            audio, sr = sf.read(f, dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for undecodable data
        raise ValueError(f"cannot decode reference audio from {what}: {exc}") from exc
    return audio, int(sr)


def _downmix(audio: np.ndarray, what: str) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        # (samples, channels) as soundfile returns it, or (channels, samples) as librosa does.
        channel_axis = 1 if audio.shape[1] <= audio.shape[0] else 0
        audio = audio.mean(axis=channel_axis)
    if audio.ndim != 1:
        raise ValueError(
            f"reference audio {what} must be 1-D (mono) or 2-D (multi-channel), got {audio.shape}"
        )
    if audio.size == 0:
        raise ValueError(f"reference audio {what} is empty")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"reference audio {what} contains NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_reference_audio(source, *, allow_download: bool = False) -> tuple[np.ndarray, int]:
    """Reference audio -> (mono float32 waveform, sample rate) at its own rate (resampled later, as qwen-tts).

    source: a local file path, `(np.ndarray, sr)`, or (only with allow_download) an http(s) URL or a
    base64 string / data URI as qwen-tts accepts them.
    """
    if isinstance(source, (tuple, list)) and len(source) == 2 and isinstance(source[0], np.ndarray):
        sr = int(source[1])
        if sr <= 0:
            raise ValueError(f"reference audio sample rate must be positive, got {source[1]}")
        return _downmix(source[0], "array"), sr
    if isinstance(source, np.ndarray):
        raise ValueError("for a numpy waveform pass a tuple (audio, sample_rate)")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(
            f"unsupported reference audio type {type(source).__name__}; use a path or (array, sr)"
        )
    if is_url(source) or (_is_base64(source) and not os.path.exists(source)):
        kind = "URL" if is_url(source) else "base64 audio"
        if not allow_download:
            raise ValueError(f"reference audio given as {kind}; pass allow_download=True or use a local file")
        if is_url(source):
            with urllib.request.urlopen(source) as response:
                audio, sr = _read_audio_bytes(response.read(), source)
        else:
            payload = source.split(",", 1)[1] if source.startswith("data:") and "," in source else source
            try:
                data = base64.b64decode(payload, validate=False)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"invalid base64 reference audio: {exc}") from exc
            audio, sr = _read_audio_bytes(data, "base64 data")
        return _downmix(audio, kind), sr
    path = os.path.expanduser(source)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reference audio file not found: {source}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"reference audio file is empty: {source}")
    import librosa

    try:
        audio, sr = librosa.load(path, sr=None, mono=True)  # what qwen-tts does for a path
    except Exception as exc:
        raise ValueError(f"cannot decode reference audio file {source}: {exc}") from exc
    return _downmix(audio, source), int(sr)


def from_prompt_item(item) -> VoicePrompt:
    """qwen-tts `VoiceClonePromptItem` (or anything with its fields) -> VoicePrompt."""
    if isinstance(item, VoicePrompt):
        return item
    return VoicePrompt(
        ref_code=item.ref_code,
        spk_embedding=item.ref_spk_embedding,
        x_vector_only_mode=bool(item.x_vector_only_mode),
        icl_mode=bool(item.icl_mode),
        ref_text=item.ref_text,
    )


def to_prompt_item(prompt: VoicePrompt):
    """VoicePrompt -> qwen-tts `VoiceClonePromptItem`."""
    from qwen_tts import VoiceClonePromptItem

    if not isinstance(prompt, VoicePrompt):
        return prompt
    return VoiceClonePromptItem(
        ref_code=None if prompt.ref_code is None else torch.as_tensor(prompt.ref_code),
        ref_spk_embedding=torch.as_tensor(prompt.spk_embedding),
        x_vector_only_mode=prompt.x_vector_only_mode,
        icl_mode=prompt.icl_mode,
        ref_text=prompt.ref_text,
    )


def save_voice_prompt(prompt: VoicePrompt, path) -> None:
    """Write `prompt` to a safetensors file (tensors + JSON metadata; no pickle)."""
    from safetensors.torch import save_file

    tensors = {"spk_embedding": torch.as_tensor(prompt.spk_embedding).detach().cpu().contiguous()}
    if prompt.ref_code is not None:
        tensors["ref_code"] = torch.as_tensor(prompt.ref_code).detach().to("cpu", torch.long).contiguous()
    meta = {
        "x_vector_only_mode": prompt.x_vector_only_mode,
        "icl_mode": prompt.icl_mode,
        "ref_text": prompt.ref_text,
    }
    save_file(
        tensors,
        os.fspath(path),
        metadata={
            "format": "qwen3_tts_ros.voice_prompt",
            "version": FORMAT_VERSION,
            "prompt": json.dumps(meta),
        },
    )


def load_voice_prompt(path) -> VoicePrompt:
    """Read a file written by `save_voice_prompt` (tensors on the CPU)."""
    from safetensors import safe_open

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"voice prompt file not found: {path}")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:
        raise ValueError(f"not a voice prompt file (safetensors) {path}: {exc}") from exc
    if header.get("format") != "qwen3_tts_ros.voice_prompt" or "spk_embedding" not in tensors:
        raise ValueError(f"not a qwen3_tts_ros voice prompt file: {path}")
    meta = json.loads(header["prompt"])
    return VoicePrompt(
        ref_code=tensors.get("ref_code"),
        spk_embedding=tensors["spk_embedding"],
        x_vector_only_mode=bool(meta["x_vector_only_mode"]),
        icl_mode=bool(meta["icl_mode"]),
        ref_text=meta["ref_text"],
    )
