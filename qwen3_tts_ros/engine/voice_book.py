"""Named voices: a voice file (YAML or JSON) read by one loader for the node and the CLI, each voice prepared
once against the loaded engine (validated by voice.py's rules, a clone's reference encoded once), and the
book that requests choose from by name, with their own language and instruct (ModelVoices.override).

A voice file:

    default: calm            # optional: the voice of requests that name none
    voices:
      calm: {speaker: Vivian, language: English, instruct: "Calm and friendly."}
      me: {ref_audio: me.wav, ref_text: "What I said in me.wav."}   # paths relative to this file

Each voice takes VoiceSettings' fields (mode, language, speaker, instruct, ref_audio, ref_text,
x_vector_only, voice_prompt). Refusals are VoiceSettingsError naming the voice and the field.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .types import SpeechRequest
from .voice import ModelVoices, VoiceSettings, VoiceSettingsError, check_ref_audio, voice_request_fields
from .voice_prompt import is_url

VOICE_FIELDS = {f.name: f for f in dataclasses.fields(VoiceSettings)}
PATH_FIELDS = ("ref_audio", "voice_prompt")  # relative to the voice file's directory
ROOM_CHECK_TEXT = "Hello."  # a voice must leave max_seq_len room for at least this


DEFAULT_VOICE = "default"  # the name of the caller's own voice settings (the node's voice.*, the CLI's flags)


@dataclasses.dataclass(frozen=True)
class VoiceFile:
    default: str  # "" when the file names none
    voices: dict[str, VoiceSettings]

    def default_voice(self) -> str:
        """The default voice: the file's `default`, else its voice named "default"; "" when neither (the
        caller's own voice settings are then the default voice, named DEFAULT_VOICE)."""
        return self.default or (DEFAULT_VOICE if DEFAULT_VOICE in self.voices else "")


def voice_label(name: str) -> Callable[[str], str]:
    """Field names of the voice `name` in messages: voices.<name>.<field> (allow_download stays itself)."""
    return lambda field: field if field == "allow_download" else f"voices.{name}.{field}"


def parse_voice(name: str, spec: Any, base_dir: str = "") -> VoiceSettings:
    """One voice's mapping -> VoiceSettings; VoiceSettingsError names the voice and the field."""
    label = voice_label(name)
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise VoiceSettingsError(f"voice name {name!r}: a non-empty name without surrounding white space")
    if not isinstance(spec, dict):
        raise VoiceSettingsError(f"voices.{name}: a mapping of voice settings, got {type(spec).__name__}")
    values: dict[str, Any] = {}
    for field, value in spec.items():
        known = VOICE_FIELDS.get(field)
        if known is None:
            raise VoiceSettingsError(f"{label(str(field))}: unknown field; known: {sorted(VOICE_FIELDS)}")
        kind = type(known.default)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise VoiceSettingsError(f"{label(field)}: a {kind.__name__}, got {value!r}")
        if field in PATH_FIELDS and value and base_dir and not is_url(value):
            value = os.path.join(base_dir, os.path.expanduser(value))
        values[field] = value
    return VoiceSettings(**values)


def parse_voice_text(name: str, text: str) -> VoiceSettings:
    """A voice given as YAML / JSON text (the node's ~/set_voice service); paths relative to the node."""
    return parse_voice(name, _load_yaml(text, f"voice {name!r}"))


def read_voice_file(path: str) -> VoiceFile:
    """The voice file at `path` (YAML; JSON is YAML too); VoiceSettingsError names what is wrong."""
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = _load_yaml(f.read(), f"voice file {path}")
    except OSError as exc:
        raise VoiceSettingsError(f"cannot read the voice file {path}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("voices"), dict) or not data["voices"]:
        raise VoiceSettingsError(f"voice file {path}: needs a non-empty mapping 'voices: {{name: settings}}'")
    extra = set(data) - {"default", "voices"}
    if extra:
        raise VoiceSettingsError(f"voice file {path}: unknown key(s) {sorted(extra)}; known: default, voices")
    base_dir = os.path.dirname(os.path.abspath(path))
    voices = {name: parse_voice(name, spec, base_dir) for name, spec in data["voices"].items()}
    default = data.get("default") or ""
    if default and default not in voices:
        raise VoiceSettingsError(f"voice file {path}: default {default!r} is not one of {sorted(voices)}")
    return VoiceFile(default=default, voices=voices)


def _load_yaml(text: str, what: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VoiceSettingsError(f"{what}: not YAML / JSON: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Voice:
    """A voice prepared for the loaded engine: its SpeechRequest fields (a clone's prompt encoded)."""

    name: str
    request_fields: dict[str, Any]
    prepare_s: float  # what preparing it cost (validation, reference encoding, the room check)

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in self.request_fields.items() if k != "voice_prompt" and v)
        clone = " (voice prompt)" if self.request_fields.get("voice_prompt") is not None else ""
        return f"{self.name}: {shown}{clone}, prepared in {self.prepare_s * 1e3:.0f} ms"


def prepare_voice(
    engine,
    name: str,
    settings: VoiceSettings,
    *,
    label: Callable[[str], str] | None = None,
    warn: Callable[[str], Any] = lambda message: None,
) -> Voice:
    """Validate `settings` against the loaded engine and prepare them once; VoiceSettingsError names the
    voice and the field (a voice the model cannot speak, a prompt that leaves no room for text)."""
    label = label or voice_label(name)
    t0 = time.perf_counter()
    check_ref_audio(settings, allow_download=engine.allow_download, label=label)
    fields = voice_request_fields(engine, settings, label=label, warn=warn)
    try:  # stream() validates without generating: a prompt too long for max_seq_len is refused here
        engine.stream(SpeechRequest(text=ROOM_CHECK_TEXT, **fields)).close()
    except ValueError as exc:
        raise VoiceSettingsError(
            f"max_seq_len={engine.max_seq_len} is too small for this voice ({name!r}): {exc}"
        ) from exc
    return Voice(name, fields, time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class VoiceChoice:
    """What one request asks for: a voice by name ("" = the default), a language and an instruct ("" = the
    voice's own)."""

    voice: str = ""
    language: str = ""
    instruct: str = ""


class VoiceBook:
    """The prepared voices of one loaded engine, by name, and its default; thread-safe (requests are resolved
    on other threads than the one that prepares voices)."""

    def __init__(self, voices: ModelVoices | None = None):
        self._lock = threading.Lock()
        self._model_voices = voices
        self._voices: dict[str, Voice] = {}
        self.default = ""

    def reset(self, voices: ModelVoices | None, prepared: list[Voice] = (), default: str = "") -> None:
        with self._lock:
            self._model_voices = voices
            self._voices = {v.name: v for v in prepared}
            self.default = default

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._voices)

    def put(self, voice: Voice) -> bool:
        """Add or replace a voice; True when it replaced one."""
        with self._lock:
            replaced = voice.name in self._voices
            self._voices[voice.name] = voice
            return replaced

    def remove(self, name: str) -> None:
        with self._lock:
            if name == self.default:
                raise ValueError(f"voice {name!r} is the default voice; it cannot be removed")
            if self._voices.pop(name, None) is None:
                raise ValueError(f"unknown voice {name!r}; known: {sorted(self._voices)}")

    def resolve(self, choice: VoiceChoice) -> dict[str, Any]:
        """The SpeechRequest fields of `choice`; ValueError names what is refused (unknown voice, a language
        or an instruct the voice's model cannot take)."""
        with self._lock:
            if self._model_voices is None:
                raise ValueError("no model loaded")
            name = choice.voice or self.default
            voice = self._voices.get(name)
            if voice is None:
                raise ValueError(f"unknown voice {name!r}; known: {sorted(self._voices)}")
            return self._model_voices.override(voice.request_fields, choice.language, choice.instruct)
