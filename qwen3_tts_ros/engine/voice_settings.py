"""Voice settings as a user gives them (mode, language, speaker, ...) -> SpeechRequest fields of one voice.

Shared by the ROS node (its voice.* parameters) and the `qwen3-tts-say` CLI (its flags), so both accept
and refuse the same things with the same messages; `label` words a setting's name the way the caller's
user wrote it (e.g. "voice.speaker" for the node, "--speaker" for the CLI). Every refusal is a
VoiceSettingsError (a ValueError) whose message names the setting and what would be accepted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .types import MODE_OF_MODEL_TYPE
from .voice_prompt import is_url


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

    @classmethod
    def of(cls, source: Any) -> VoiceSettings:
        """The settings held by `source` under these field names (the node's LoadConfig, the CLI's args)."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})


def node_label(name: str) -> str:
    """The node's parameter names: voice.<name>, and allow_download at the top level."""
    return name if name == "allow_download" else f"voice.{name}"


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


def voice_request_fields(
    engine,
    settings: VoiceSettings,
    *,
    label: Callable[[str], str] = node_label,
    warn: Callable[[str], Any] = lambda message: None,
) -> dict[str, Any]:
    """Validate `settings` against the loaded engine; -> SpeechRequest fields (the voice prompt of a voice
    clone is encoded here, once). Settings the model ignores are dropped and reported through `warn`."""
    model_mode = MODE_OF_MODEL_TYPE.get(engine.tts_model_type)
    mode = settings.mode or model_mode
    if mode != model_mode:
        raise VoiceSettingsError(
            f"{label('mode')} {mode!r} needs a model of another type; this model is "
            f"{engine.tts_model_type!r} (mode {model_mode!r})"
        )
    languages = [str(x) for x in (engine.get_supported_languages() or [])]
    language = settings.language or "Auto"
    if language.lower() != "auto" and languages and language.lower() not in [x.lower() for x in languages]:
        raise VoiceSettingsError(
            f"{label('language')} {language!r} not supported by this model; supported: {languages}"
        )
    fields: dict[str, Any] = dict(mode=mode, language=language)
    if mode == "custom_voice":
        speakers = [str(x) for x in (engine.get_supported_speakers() or [])]
        speaker = settings.speaker or (speakers[0] if speakers else "")
        if speakers and speaker.lower() not in [x.lower() for x in speakers]:
            raise VoiceSettingsError(
                f"{label('speaker')} {speaker!r} not supported by this model; supported: {speakers}"
            )
        instruct = settings.instruct or None
        if instruct and engine.tts_model_size == "0b6":
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
