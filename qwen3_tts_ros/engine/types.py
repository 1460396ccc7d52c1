"""Plain data types shared by the engine's modules and its users (the ROS node, the CLI).

No torch work happens here; tensors are only carried.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
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
class Rule:
    """What one setting accepts: its type and bounds (low exclusive where `above`); `why` ends the refusal."""

    kind: type  # bool, int or float
    low: float | None = None
    high: float | None = None
    above: bool = False  # low itself is refused
    why: str = ""

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.high is not None:
            return f"in the range [{self.low:g}, {self.high:g}]"
        return f"{'>' if self.above else '>='} {self.low:g}"

    def check(self, name: str, value: Any) -> None:
        """ValueError naming `name` unless `value` is acceptable."""
        if self.kind is bool:
            ok = isinstance(value, (bool, np.bool_))
        elif isinstance(value, (bool, np.bool_)) or not isinstance(value, NUMBER_TYPES[self.kind]):
            ok = False
        else:
            ok = math.isfinite(value)
            ok = ok and (self.low is None or (value > self.low if self.above else value >= self.low))
            ok = ok and (self.high is None or value <= self.high)
        if not ok:
            kind = {bool: "", int: "an integer ", float: "a number "}[self.kind]
            raise ValueError(f"{name} must be {kind}{self.describe()}{self.why}, got {value!r}")


NUMBER_TYPES = {int: (int, np.integer), float: (int, np.integer, float, np.floating)}
_DIVISOR = " (qwen-tts divides by it; for greedy decoding set do_sample false)"
SAMPLING_RULES: dict[str, Rule] = dict(
    do_sample=Rule(bool),
    top_k=Rule(int, 0, why=" (0: off)"),
    top_p=Rule(float, 0.0, 1.0),
    temperature=Rule(float, 0.0, above=True, why=_DIVISOR),
    repetition_penalty=Rule(float, 0.0, above=True, why=" (qwen-tts divides by it; 1.0: no penalty)"),
    subtalker_dosample=Rule(bool),
    subtalker_top_k=Rule(int, 0, why=" (0: off)"),
    subtalker_top_p=Rule(float, 0.0, 1.0),
    subtalker_temperature=Rule(
        float, 0.0, above=True, why=_DIVISOR.replace("do_sample", "subtalker_dosample")
    ),
    max_new_tokens=Rule(int, 1),
    min_new_tokens=Rule(int, 0),
)


@dataclass(frozen=True)
class SamplingParams:
    """Per-call sampling settings, with qwen-tts's names and semantics; refuses a value it cannot use
    (ValueError naming the setting and what it accepts: SAMPLING_RULES)."""

    do_sample: bool = HARD_DEFAULTS["do_sample"]
    top_k: int = HARD_DEFAULTS["top_k"]
    top_p: float = HARD_DEFAULTS["top_p"]
    temperature: float = HARD_DEFAULTS["temperature"]
    repetition_penalty: float = HARD_DEFAULTS["repetition_penalty"]
    subtalker_dosample: bool = HARD_DEFAULTS["subtalker_dosample"]
    subtalker_top_k: int = HARD_DEFAULTS["subtalker_top_k"]
    subtalker_top_p: float = HARD_DEFAULTS["subtalker_top_p"]
    subtalker_temperature: float = HARD_DEFAULTS["subtalker_temperature"]
    max_new_tokens: int = HARD_DEFAULTS["max_new_tokens"]
    min_new_tokens: int = 2  # qwen-tts passes min_new_tokens=2 to the talker's generate

    def __post_init__(self) -> None:
        for name, rule in SAMPLING_RULES.items():
            rule.check(name, getattr(self, name))

    @classmethod
    def check_overrides(cls, **explicit: Any) -> None:
        """Refuse what `merged` would refuse, without the model's defaults: TypeError for an unknown name,
        ValueError for a value (None stands for "the model's default" and is accepted)."""
        unknown = set(explicit) - set(SAMPLING_RULES)
        if unknown:
            allowed = sorted(SAMPLING_RULES)
            raise TypeError(f"unknown sampling argument(s): {sorted(unknown)}; allowed: {allowed}")
        for name, value in explicit.items():
            if value is not None:
                SAMPLING_RULES[name].check(name, value)

    @classmethod
    def merged(cls, generate_defaults: dict[str, Any] | None = None, **explicit: Any) -> SamplingParams:
        """Merge like qwen-tts: explicit (not None) > generation_config.json > hard defaults."""
        cls.check_overrides(**explicit)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.name
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


@dataclass(frozen=True)
class RunawayGuard:
    """Ends an utterance whose model never says EOS: at most max(min_frames, ceil(frames_per_token * its
    text tokens)) frames (speech is ~2-5 frames per token; a voice told to speak slowly, ~2x that)."""

    frames_per_token: float = 8.0
    min_frames: int = 50  # 4 s: short texts (one token, a name) still get room

    def __post_init__(self) -> None:
        Rule(float, 0.0, above=True).check("runaway frames_per_token", self.frames_per_token)
        Rule(int, 1).check("runaway min_frames", self.min_frames)

    def max_frames(self, text_tokens: int) -> int:
        return max(self.min_frames, math.ceil(self.frames_per_token * text_tokens))


@dataclass
class SpeechRequest:
    """One utterance to synthesise (batch size 1).

    text: a str, or an iterable of str pieces still being written (an LLM's token stream; a generator that
    blocks for the next piece, or an engine TextFeed): spoken as one utterance in the streaming-text
    layout as the pieces arrive (core.py)."""

    text: str | Iterable[str]
    mode: str  # voice_clone, custom_voice or voice_design (MODE_OF_MODEL_TYPE's values)
    language: str = "Auto"
    speaker: str | None = None  # custom_voice
    instruct: str | None = None  # custom_voice (1.7B) / voice_design
    voice_prompt: VoicePrompt | None = None  # voice_clone
    non_streaming_mode: bool | None = None  # None: qwen-tts's default for the mode
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        """The fields' types and the mode; what the loaded model accepts is checked by the engine."""
        if self.mode not in MODE_OF_MODEL_TYPE.values():
            raise ValueError(f"mode must be one of {sorted(MODE_OF_MODEL_TYPE.values())}, got {self.mode!r}")
        for name in ("language", "speaker", "instruct"):
            value = getattr(self, name)
            if not (isinstance(value, str) or value is None):
                raise TypeError(f"{name} must be a str, got {type(value).__name__}")
        if not self.text_is_whole and (
            not isinstance(self.text, Iterable) or isinstance(self.text, (bytes, bytearray, dict))
        ):
            kind = type(self.text).__name__
            raise TypeError(f"text must be a str or an iterable of str pieces, got {kind}")
        if self.non_streaming_mode not in (None, True, False):
            raise TypeError(f"non_streaming_mode must be None, True or False, got {self.non_streaming_mode}")
        if self.non_streaming_mode and not self.text_is_whole:
            raise ValueError(
                "non_streaming_mode=True needs the whole text up front; text given in pieces is spoken in "
                "the streaming-text layout (leave non_streaming_mode None or False)"
            )
        if not isinstance(self.sampling, SamplingParams):
            raise TypeError(f"sampling must be a SamplingParams, got {type(self.sampling).__name__}")

    @property
    def text_is_whole(self) -> bool:
        """True for a str; False for text given in pieces."""
        return isinstance(self.text, str)


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

    text_length: int = 0  # characters (of text given in pieces: received, once the stream ended)
    text_tokens: int = 0  # the text's tokens (summed over pieces of a split text)
    prefill_ms: float = 0.0
    time_to_first_audio_ms: float = 0.0  # request -> first chunk ready (prefill + frames + decode)
    # Text given in pieces: seconds from the request to its first non-empty piece (so first text -> first
    # audio is time_to_first_audio_ms - 1000 * first_text_s); how often, and how long in all, generation
    # waited for text after the first frame (a frame needs its text token, prefill.py).
    first_text_s: float = 0.0
    text_stalls: int = 0
    text_wait_ms: float = 0.0
    frames: int = 0
    frame_ms: list[float] = field(default_factory=list)  # generation time of each frame
    decode_ms_total: float = 0.0
    total_s: float = 0.0
    audio_seconds: float = 0.0
    stopped_by: str = ""  # "eos", "max_new_tokens", "cancelled", "max_seq_len", "runaway" (RunawayGuard)

    @property
    def real_time_factor(self) -> float:
        """Audio seconds per wall second (bigger is better)."""
        return self.audio_seconds / self.total_s if self.total_s > 0 else 0.0
