"""The voice rules, in one place: which mode a model serves, which languages and speakers it knows, which
requests take an instruct, who "the first speaker" is. `ModelVoices.normalize` applies them to a request once
(the engine calls it where a request comes in; prefill and generation trust its result); the ROS node
(voice.* parameters) and the `qwen3-tts-say` CLI (flags) turn their settings into request fields with
`voice_request_fields`, through the same rules and messages. `label` words a setting's name the way the
caller's user wrote it (e.g. "voice.speaker" for the node, "--speaker" for the CLI). Every refusal is a
ValueError (VoiceSettingsError for the settings) whose message names the setting and what would be accepted.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from . import voice_prompt as vp
from .types import MODE_OF_MODEL_TYPE, SpeechRequest
from .voice_prompt import is_url

# qwen-tts's generation method of each mode (named in refusals of the qwen-tts-style API)
METHOD_OF_MODE = {
    "voice_clone": "generate_voice_clone",
    "custom_voice": "generate_custom_voice",
    "voice_design": "generate_voice_design",
}
# qwen-tts's default non_streaming_mode (its prompt layout: whole text up front) per generation method
DEFAULT_NON_STREAMING_MODE = {"voice_clone": False, "custom_voice": True, "voice_design": True}
NOT_SUPPORTED = "not supported by this model; supported: "
SMALL_MODEL_SIZE = "0b6"  # qwen-tts: the 0.6B CustomVoice model takes no instruct


def _named(name: str) -> str:
    return name


@dataclass(frozen=True)
class ModelVoices:
    """What one loaded model accepts, and the rules that follow from it."""

    model_type: str  # config.json's tts_model_type: base, custom_voice, voice_design
    model_size: str  # "0b6", "1b7"
    languages: tuple[str, ...] | None  # lowercase, with "auto"; None: the model states none
    speakers: tuple[str, ...] | None  # lowercase, sorted (qwen-tts's order)

    @classmethod
    def of(cls, tts) -> ModelVoices:
        """From a loaded `qwen_tts.Qwen3TTSModel`."""
        languages, speakers = tts.get_supported_languages(), tts.get_supported_speakers()
        return cls(
            model_type=tts.model.tts_model_type,
            model_size=tts.model.tts_model_size,
            languages=None if languages is None else tuple(str(x) for x in languages),
            speakers=None if speakers is None else tuple(str(x) for x in speakers),
        )

    @property
    def mode(self) -> str:
        """The generation mode this model serves: voice_clone, custom_voice or voice_design."""
        return MODE_OF_MODEL_TYPE[self.model_type]

    def takes_instruct(self, mode: str) -> bool:
        return mode == "voice_design" or (mode == "custom_voice" and self.model_size != SMALL_MODEL_SIZE)

    def first_speaker(self) -> str:
        """The speaker used when none is given: the first of the model's (sorted) speakers."""
        return self.speakers[0] if self.speakers else ""

    def check_mode(self, mode: str, asked_by: str) -> None:
        if mode != self.mode:
            raise ValueError(
                f"{asked_by} needs a {mode!r} model; the loaded model has tts_model_type={self.model_type!r} "
                f"(size {self.model_size}), which supports only mode {self.mode!r} "
                f"({METHOD_OF_MODE[self.mode]})"
            )

    def check_language(self, language: str | None, label: Callable[[str], str] = _named) -> str:
        """-> the language as given ("Auto" for None or ""); ValueError if the model does not know it."""
        language = str(language or "Auto")
        known = self.languages
        if language.lower() != "auto" and known is not None and language.lower() not in known:
            raise ValueError(f"{label('language')} {language!r} {NOT_SUPPORTED}{list(known)}")
        return language

    def check_speaker(self, speaker: str | None, label: Callable[[str], str] = _named) -> str:
        known = self.speakers or ()
        if not speaker or str(speaker).lower() not in known:
            raise ValueError(f"{label('speaker')} {speaker!r} {NOT_SUPPORTED}{list(known)}")
        return str(speaker)

    def normalize(self, request: SpeechRequest) -> SpeechRequest:
        """`request` with every voice rule applied: mode, language and speaker checked; what the mode does not
        use (speaker, instruct, voice prompt) dropped; qwen-tts's prompt layout default filled in. ValueError
        names what the model refuses. Idempotent."""
        mode = request.mode
        self.check_mode(mode, METHOD_OF_MODE.get(mode, mode))
        speaker = self.check_speaker(request.speaker) if mode == "custom_voice" else None
        prompt = None
        if mode == "voice_clone":
            if request.voice_prompt is None:
                raise ValueError("a voice_clone request needs a voice_prompt (see create_voice_prompt)")
            prompt = vp.from_prompt_item(request.voice_prompt)
        non_streaming_mode = request.non_streaming_mode
        if non_streaming_mode is None:  # text in pieces: only the streaming-text layout can take it
            non_streaming_mode = DEFAULT_NON_STREAMING_MODE[mode] and request.text_is_whole
        return replace(
            request,
            language=self.check_language(request.language),
            speaker=speaker,
            instruct=(request.instruct or None) if self.takes_instruct(mode) else None,
            voice_prompt=prompt,
            non_streaming_mode=bool(non_streaming_mode),
        )

    def override(self, fields: dict[str, Any], language: str = "", instruct: str = "") -> dict[str, Any]:
        """A prepared voice's request `fields` with one request's language and instruct ("" keeps the
        voice's); ValueError for a language the model does not know or an instruct the voice cannot take."""
        fields = dict(fields)
        if language:
            fields["language"] = self.check_language(language)
        if instruct:
            mode = fields["mode"]
            if not self.takes_instruct(mode):
                why = "the 0.6B CustomVoice model takes none" if mode == "custom_voice" else (
                    "voice_clone takes none (the reference sets the voice)"
                )
                raise ValueError(f"instruct refused: {why}")
            fields["instruct"] = instruct
        return fields


class VoiceSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class VoiceSettings:
    mode: str = ""  # "" = the mode of the model
    language: str = "Auto"
    speaker: str = ""  # custom_voice; "" = the model's first speaker
    instruct: str = ""  # voice_design (required) / custom_voice 1.7B (optional)
    ref_audio: str = ""  # voice_clone: a file (or an http(s) URL, with allow_download)
    ref_text: str = ""  # voice_clone: transcript of ref_audio (not needed with x_vector_only)
    x_vector_only: bool = False
    voice_prompt: str = ""  # voice_clone: a file written by save_voice_prompt (instead of ref_audio)

    @classmethod
    def of(cls, source: Any) -> VoiceSettings:
        """The settings held by `source` under these field names (the node's LoadConfig, the CLI's args);
        a field that `source` lacks keeps its default."""
        return cls(**{f.name: getattr(source, f.name, f.default) for f in fields(cls)})


def node_label(name: str) -> str:
    """The node's parameter names: voice.<name>, and allow_download at the top level."""
    return name if name == "allow_download" else f"voice.{name}"


@contextlib.contextmanager
def _as_settings_error():
    try:
        yield
    except ValueError as exc:
        raise VoiceSettingsError(str(exc)) from exc


def check_ref_audio(
    settings: VoiceSettings, *, allow_download: bool, label: Callable[[str], str] = node_label
) -> None:
    """What can be checked before the model is loaded: the reference audio is reachable."""
    ref = settings.ref_audio
    if not ref:
        return
    if is_url(ref):
        if not allow_download:
            raise VoiceSettingsError(
                f"{label('ref_audio')} is a URL ({ref}); set {label('allow_download')} or give a local file"
            )
    elif not os.path.isfile(os.path.expanduser(ref)):
        raise VoiceSettingsError(f"{label('ref_audio')} not found: {ref}")


# The settings only one mode uses. Given in another mode they would be silently unused (a reference voice that
# is never heard), so they are refused; instruct is not among them: qwen-tts takes it in every mode and
# ignores it where the model has no use for it, which voice_request_fields reports with a warning.
SETTINGS_OF_MODE = {"speaker": "custom_voice", "ref_audio": "voice_clone", "ref_text": "voice_clone",
                    "x_vector_only": "voice_clone"}  # fmt: skip


def _refuse_unusable(settings: VoiceSettings, mode: str, label: Callable[[str], str]) -> None:
    for name, used_in in SETTINGS_OF_MODE.items():
        if used_in != mode and getattr(settings, name):
            model_type = next(t for t, m in MODE_OF_MODEL_TYPE.items() if m == used_in)
            raise VoiceSettingsError(
                f"{label(name)} is used only in {used_in} mode; this model's voice is in {mode} mode "
                f"(unset {label(name)}, or load a {model_type} model)"
            )


def voice_request_fields(
    engine,
    settings: VoiceSettings,
    *,
    label: Callable[[str], str] = node_label,
    warn: Callable[[str], Any] = lambda message: None,
) -> dict[str, Any]:
    """Validate `settings` against the loaded engine; -> SpeechRequest fields (the voice prompt of a voice
    clone is encoded here, once). Settings the model ignores are dropped and reported through `warn`."""
    voices: ModelVoices = engine.voices
    mode = settings.mode or voices.mode
    with _as_settings_error():
        voices.check_mode(mode, f"{label('mode')} {mode!r}")
        language = voices.check_language(settings.language, label)
    _refuse_unusable(settings, mode, label)
    fields: dict[str, Any] = dict(mode=mode, language=language)
    if mode == "custom_voice":
        with _as_settings_error():
            speaker = voices.check_speaker(settings.speaker or voices.first_speaker(), label)
        instruct = settings.instruct or None
        if instruct and not voices.takes_instruct(mode):
            warn(f"{label('instruct')} ignored: the 0.6B CustomVoice model takes none (as in qwen-tts)")
            instruct = None
        fields.update(speaker=speaker, instruct=instruct)
    elif mode == "voice_design":
        if not settings.instruct.strip():
            raise VoiceSettingsError(
                f"{label('instruct')} (the description of the voice) is required in voice_design mode"
            )
        fields.update(instruct=settings.instruct)
    else:
        if settings.instruct:
            warn(f"{label('instruct')} ignored: voice_clone mode takes none (the reference sets the voice)")
        if settings.voice_prompt:
            try:
                fields["voice_prompt"] = vp.load_voice_prompt(os.path.expanduser(settings.voice_prompt))
            except (OSError, ValueError) as exc:
                raise VoiceSettingsError(f"cannot use {label('voice_prompt')}: {exc}") from exc
            return fields
        if not settings.ref_audio:
            raise VoiceSettingsError(f"{label('ref_audio')} is required in voice_clone mode")
        if not settings.x_vector_only and not settings.ref_text.strip():
            raise VoiceSettingsError(
                f"{label('ref_text')} is required in voice_clone mode unless {label('x_vector_only')}"
            )
        ref = settings.ref_audio if is_url(settings.ref_audio) else os.path.expanduser(settings.ref_audio)
        try:
            fields["voice_prompt"] = engine.create_voice_prompt(
                ref, ref_text=settings.ref_text or None, x_vector_only_mode=settings.x_vector_only
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise VoiceSettingsError(
                f"cannot use {label('ref_audio')} {settings.ref_audio!r}: {type(exc).__name__}: {exc}"
            ) from exc
    return fields
