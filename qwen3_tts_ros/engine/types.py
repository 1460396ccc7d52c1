"""Plain data types shared by the engine's modules and its users (the ROS node, the CLI).

No torch work happens here; tensors are only carried.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 1920  # one 12.5 Hz codec frame = 80 ms at 24 kHz
# tts_model_type in config.json -> the generation mode it supports
MODE_OF_MODEL_TYPE = {"base": "voice_clone", "custom_voice": "custom_voice", "voice_design": "voice_design"}

# qwen-tts 0.1.1 `_merge_generate_kwargs` hard defaults (explicit > generation_config.json > these).
HARD_DEFAULTS: dict[str, Any] = dict(
    do_sample=True, top_k=50, top_p=1.0, temperature=0.9, repetition_penalty=1.05,
    subtalker_dosample=True, subtalker_top_k=50, subtalker_top_p=1.0, subtalker_temperature=0.9,
    max_new_tokens=2048,
)


@dataclass(frozen=True)
class SamplingParams:
    """Per-call sampling settings, with qwen-tts's names and semantics."""

    do_sample: bool = True
    top_k: int = 50
    top_p: float = 1.0
    temperature: float = 0.9
    repetition_penalty: float = 1.05
    subtalker_dosample: bool = True
    subtalker_top_k: int = 50
    subtalker_top_p: float = 1.0
    subtalker_temperature: float = 0.9
    max_new_tokens: int = 2048
    min_new_tokens: int = 2  # qwen-tts passes min_new_tokens=2 to the talker's generate

    @classmethod
    def merged(cls, generate_defaults: dict[str, Any] | None = None, **explicit: Any) -> SamplingParams:
        """Merge like qwen-tts: explicit (not None) > generation_config.json > hard defaults."""
        names = {f.name for f in fields(cls)}
        unknown = set(explicit) - names
        if unknown:
            raise TypeError(f"unknown sampling argument(s): {sorted(unknown)}; allowed: {sorted(names)}")
        values: dict[str, Any] = {}
        for name in names:
            if explicit.get(name) is not None:
                values[name] = explicit[name]
            elif generate_defaults and generate_defaults.get(name) is not None:
                values[name] = generate_defaults[name]
            elif name in HARD_DEFAULTS:
                values[name] = HARD_DEFAULTS[name]
        return cls(**values)


@dataclass
class VoicePrompt:
    """A reusable voice: reference audio encoded once (voice clone, Base models).

    ref_code: (T, 16) int64 codec codes of the reference audio, None in x-vector-only mode.
    spk_embedding: (enc_dim,) float speaker embedding (x-vector) from the speaker encoder.
    """

    ref_code: Any | None
    spk_embedding: Any
    x_vector_only_mode: bool
    icl_mode: bool
    ref_text: str | None = None


@dataclass
class SpeechRequest:
    """One utterance to synthesise (batch size 1)."""

    text: str
    mode: str  # voice_clone, custom_voice or voice_design (MODE_OF_MODEL_TYPE's values)
    language: str = "Auto"
    speaker: str | None = None  # custom_voice
    instruct: str | None = None  # custom_voice (1.7B) / voice_design
    voice_prompt: VoicePrompt | None = None  # voice_clone
    non_streaming_mode: bool | None = None  # None: qwen-tts's default for the mode
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class PcmChunk:
    """A piece of streamed audio. Chunks of one stream cover contiguous frame ranges."""

    pcm: np.ndarray  # 1-D, int16 or float32, exactly frame_count * SAMPLES_PER_FRAME samples
    sample_rate: int
    frame_start: int
    frame_count: int
    is_final: bool
    # Seconds since the stream was requested, when this chunk's last frame was generated / its audio decoded.
    generated_at_s: float = 0.0
    decoded_at_s: float = 0.0


@dataclass
class StreamStats:
    """Filled in while a stream runs; complete once its final chunk has been yielded."""

    text_length: int = 0
    prefill_ms: float = 0.0
    time_to_first_audio_ms: float = 0.0  # request -> first chunk ready (prefill + frames + decode)
    frames: int = 0
    frame_ms: list[float] = field(default_factory=list)  # generation time of each frame
    decode_ms_total: float = 0.0
    total_s: float = 0.0
    audio_seconds: float = 0.0
    stopped_by: str = ""  # "eos", "max_new_tokens", "cancelled", "max_seq_len"

    @property
    def real_time_factor(self) -> float:
        """Audio seconds per wall second (bigger is better)."""
        return self.audio_seconds / self.total_s if self.total_s > 0 else 0.0
