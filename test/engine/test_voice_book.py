"""Named voices (engine/voice_book.py): the voice file, each voice prepared once with the voice rules, and
requests that choose a voice per utterance.

Exactness: float64 tiny checkpoints, greedy decoding. Two decodes of the same prompt run the same float64
operations in the same order on the CPU, so "exactly the audio" is asserted as equality (bound 0): a voice
switch that left any state behind (cache rows, a remembered prompt length, a codec state) would show."""
import numpy as np
import pytest
import soundfile as sf

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest
from qwen3_tts_ros.engine.voice import VoiceSettings, VoiceSettingsError
from qwen3_tts_ros.engine.voice_book import (
    VoiceBook,
    VoiceChoice,
    parse_voice_text,
    prepare_voice,
    read_voice_file,
)

GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=10)
TEXTS = ("The first sentence.", "Something else entirely.", "The first sentence.")


@pytest.fixture(scope="module")
def reference_wav(tmp_path_factory):
    rate = 24000
    t = np.arange(2 * rate) / rate
    path = tmp_path_factory.mktemp("voice_book") / "ref.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate)
    return path


def two_voices(kind: str, reference_wav) -> dict[str, VoiceSettings]:
    """Two different voices a model of `kind` can speak."""
    if kind == "custom_voice":
        return {"a": VoiceSettings(speaker="Vivian", language="English"),
                "b": VoiceSettings(speaker="Ryan", instruct="Speak quickly.")}
    if kind == "voice_design":
        return {"a": VoiceSettings(instruct="A calm, low voice."),
                "b": VoiceSettings(instruct="A bright, fast voice.", language="German")}
    return {"a": VoiceSettings(ref_audio=str(reference_wav), ref_text="A reference."),
            "b": VoiceSettings(ref_audio=str(reference_wav), x_vector_only=True)}


@pytest.fixture(scope="module")
def tts_of_kind(tiny_base_tts_f64, tiny_custom_voice_tts_f64, tiny_voice_design_tts_f64):
    return {"base": tiny_base_tts_f64, "custom_voice": tiny_custom_voice_tts_f64,
            "voice_design": tiny_voice_design_tts_f64}


def speak(engine, fields: dict, text: str) -> np.ndarray:
    stream = engine.stream(SpeechRequest(text=text, sampling=GREEDY, **fields), pcm_format="float32")
    return np.concatenate([chunk.pcm for chunk in stream])


@pytest.mark.parametrize("kind", ["base", "custom_voice", "voice_design"])
def test_per_utterance_voice_equals_an_engine_with_that_voice_alone(kind, tts_of_kind, reference_wav):
    """Utterances with voices b, a, b from one book: the third equals the first (the switch leaves no
    trace), and each equals the audio of a fresh engine that only ever had that voice."""
    tts = tts_of_kind[kind]
    settings = two_voices(kind, reference_wav)
    engine = Qwen3TTSCudaGraphs(tts, max_seq_len=512)
    book = VoiceBook()
    book.reset(engine.voices, [prepare_voice(engine, n, s) for n, s in settings.items()], "a")
    order = ("b", "a", "b")
    audio = [speak(engine, book.resolve(VoiceChoice(voice=n)), t) for n, t in zip(order, TEXTS)]
    assert audio[0].size > 0
    np.testing.assert_array_equal(audio[2], audio[0])
    for name, text, got in zip(order, TEXTS, audio):
        alone = Qwen3TTSCudaGraphs(tts, max_seq_len=512)
        voice = prepare_voice(alone, name, settings[name])
        np.testing.assert_array_equal(got, speak(alone, voice.request_fields, text))
        alone.close()
    assert not np.array_equal(audio[1], speak(engine, book.resolve(VoiceChoice(voice="b")), TEXTS[1])), (
        "the two voices must differ, or the test shows nothing")
    engine.close()


def test_per_utterance_language_and_instruct_follow_the_voice_rules(
        tiny_custom_voice_tts_f64, tiny_base_tts_f64, reference_wav):
    engine = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=512)
    book = VoiceBook()
    book.reset(engine.voices, [prepare_voice(engine, "calm", VoiceSettings(speaker="Vivian"))], "calm")
    fields = book.resolve(VoiceChoice(language="German", instruct="Cheerfully."))
    assert (fields["language"], fields["instruct"], fields["speaker"]) == ("German", "Cheerfully.", "Vivian")
    # The voice itself is untouched by a request's own language and instruct.
    own = book.resolve(VoiceChoice())
    assert own["language"] == "Auto" and own["instruct"] is None
    with pytest.raises(ValueError, match="unknown voice 'loud'; known: \\['calm'\\]"):
        book.resolve(VoiceChoice(voice="loud"))
    with pytest.raises(ValueError, match="language 'Klingon' not supported"):
        book.resolve(VoiceChoice(language="Klingon"))
    with pytest.raises(ValueError, match="is the default voice"):
        book.remove("calm")
    engine.close()
    clone = Qwen3TTSCudaGraphs(tiny_base_tts_f64, max_seq_len=512)
    book.reset(clone.voices, [prepare_voice(clone, "me", VoiceSettings(ref_audio=str(reference_wav),
                                                                         x_vector_only=True))], "me")
    with pytest.raises(ValueError, match="instruct refused: voice_clone takes none"):
        book.resolve(VoiceChoice(instruct="Cheerfully."))
    clone.close()


def test_voice_file_kinds_paths_and_refusals(tmp_path, reference_wav):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "me.wav", np.zeros(2400, np.float32), 24000)
    path = tmp_path / "voices.yaml"
    path.write_text(
        "default: calm\n"
        "voices:\n"
        "  calm: {speaker: Vivian, language: English, instruct: Calm.}\n"
        "  me: {ref_audio: sub/me.wav, ref_text: Hello there.}\n"
        "  saved: {voice_prompt: me.safetensors}\n"
        "  narrator: {instruct: A deep slow voice., mode: voice_design}\n"
        "  quick: {ref_audio: sub/me.wav, x_vector_only: true}\n")
    voices = read_voice_file(str(path))
    assert voices.default == voices.default_voice() == "calm"
    assert voices.voices["me"].ref_audio == str(tmp_path / "sub" / "me.wav")
    assert voices.voices["saved"].voice_prompt == str(tmp_path / "me.safetensors")
    assert voices.voices["quick"].x_vector_only is True
    assert parse_voice_text("x", '{"speaker": "Ryan"}') == VoiceSettings(speaker="Ryan")  # JSON is YAML
    bad = {
        "voices:\n  a: {speeker: Ryan}\n": "voices.a.speeker: unknown field",
        "voices:\n  a: {x_vector_only: 'yes'}\n": "voices.a.x_vector_only: a bool",
        "voices:\n  a: {speaker: 3}\n": "voices.a.speaker: a str",
        "default: b\nvoices:\n  a: {speaker: Ryan}\n": "default 'b' is not one of ['a']",
        "voices: []\n": "needs a non-empty mapping",
        "voices:\n  a: [1\n": "not YAML / JSON",
        "voices:\n  a: {}\nextra: 1\n": "unknown key(s) ['extra']",
    }
    for text, words in bad.items():
        path.write_text(text)
        with pytest.raises(VoiceSettingsError, match=None) as info:
            read_voice_file(str(path))
        assert words in str(info.value), (text, str(info.value))
    with pytest.raises(VoiceSettingsError, match="cannot read the voice file"):
        read_voice_file(str(tmp_path / "missing.yaml"))


def test_a_voice_the_model_cannot_speak_is_refused_naming_voice_and_field(tiny_custom_voice_tts_f64,
                                                                          reference_wav, tmp_path):
    engine = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=512)
    cases = {
        VoiceSettings(mode="voice_clone", ref_audio=str(reference_wav), ref_text="x"): "voices.v.mode",
        VoiceSettings(speaker="nobody"): "voices.v.speaker 'nobody'",
        VoiceSettings(language="Klingon"): "voices.v.language 'Klingon'",
        VoiceSettings(mode="voice_clone", voice_prompt=str(tmp_path / "none.safetensors")): "voices.v.mode",
    }
    for settings, words in cases.items():
        with pytest.raises(VoiceSettingsError) as info:
            prepare_voice(engine, "v", settings)
        assert words in str(info.value), str(info.value)
    short = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=64)
    with pytest.raises(VoiceSettingsError, match="max_seq_len=64 is too small for this voice \\('v'\\)"):
        prepare_voice(short, "v", VoiceSettings(instruct="word " * 40))
    short.close()
    engine.close()


def test_a_saved_voice_prompt_is_a_voice(tiny_base_tts_f64, reference_wav, tmp_path):
    engine = Qwen3TTSCudaGraphs(tiny_base_tts_f64, max_seq_len=512)
    reference = VoiceSettings(ref_audio=str(reference_wav), ref_text="A reference.")
    from_audio = prepare_voice(engine, "me", reference)
    path = tmp_path / "me.safetensors"
    engine.save_voice_prompt(from_audio.request_fields["voice_prompt"], path)
    saved = prepare_voice(engine, "saved", VoiceSettings(voice_prompt=str(path)))
    np.testing.assert_array_equal(speak(engine, saved.request_fields, TEXTS[0]),
                                  speak(engine, from_audio.request_fields, TEXTS[0]))
    engine.close()
