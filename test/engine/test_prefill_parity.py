"""Our talker prompt equals the one qwen-tts builds and feeds `model.talker.generate`, for every mode."""

import pytest
import torch

from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SpeechRequest, VoicePrompt
from qwen3_tts_ros.engine.voice import ModelVoices

TEXTS = ("Hello there, world.", "你好，世界")


class _Captured(Exception):
    pass


def capture_talker_inputs(tts, call):
    """Run a qwen-tts wrapper call and return the kwargs it passes to talker.generate (generation skipped)."""
    captured = {}

    def fake_generate(**kwargs):
        captured.update(kwargs)
        raise _Captured

    tts.model.talker.generate = fake_generate  # instance attribute shadows the bound method
    try:
        with pytest.raises(_Captured):
            call()
    finally:
        del tts.model.talker.generate
    return captured


def assert_same(ours, theirs):
    assert theirs["attention_mask"].bool().all()
    assert ours.inputs_embeds.shape == theirs["inputs_embeds"].shape
    torch.testing.assert_close(ours.inputs_embeds, theirs["inputs_embeds"], rtol=0, atol=0)
    torch.testing.assert_close(ours.trailing_text_hidden, theirs["trailing_text_hidden"], rtol=0, atol=0)
    torch.testing.assert_close(ours.tts_pad_embed, theirs["tts_pad_embed"], rtol=0, atol=0)


def to_voice_prompt(item):
    return VoicePrompt(
        ref_code=item.ref_code,
        spk_embedding=item.ref_spk_embedding,
        x_vector_only_mode=item.x_vector_only_mode,
        icl_mode=item.icl_mode,
        ref_text=item.ref_text,
    )


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("language", ["Auto", "english", "chinese"])
@pytest.mark.parametrize("speaker", ["vivian", "eric", "dylan"])
@pytest.mark.parametrize("instruct", [None, "Speak slowly and warmly."])
@pytest.mark.parametrize("non_streaming_mode", [None, False, True])
def test_custom_voice(tiny_custom_voice_tts, text, language, speaker, instruct, non_streaming_mode):
    tts = tiny_custom_voice_tts
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    theirs = capture_talker_inputs(
        tts,
        lambda: tts.generate_custom_voice(text, speaker=speaker, language=language, instruct=instruct, **kw),
    )
    req = SpeechRequest(
        text=text,
        mode="custom_voice",
        language=language,
        speaker=speaker,
        instruct=instruct,
        non_streaming_mode=non_streaming_mode,
    )
    ours = build_prefill(tts.model, tts.processor, req)
    assert ours.ref_code is None
    assert_same(ours, theirs)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("language", ["Auto", "german"])
@pytest.mark.parametrize("non_streaming_mode", [None, False, True])
def test_voice_design(tiny_voice_design_tts, text, language, non_streaming_mode):
    tts = tiny_voice_design_tts
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    instruct = "A deep, calm male voice."
    theirs = capture_talker_inputs(
        tts, lambda: tts.generate_voice_design(text, instruct=instruct, language=language, **kw)
    )
    req = SpeechRequest(
        text=text,
        mode="voice_design",
        language=language,
        instruct=instruct,
        non_streaming_mode=non_streaming_mode,
    )
    assert_same(build_prefill(tts.model, tts.processor, req), theirs)


@pytest.fixture(scope="module")
def clone_prompts(tiny_base_tts, reference_audio):
    tts = tiny_base_tts
    short_ref = (reference_audio[0][:9000], reference_audio[1])  # 5 frames: shorter than the text
    return {
        "icl": tts.create_voice_clone_prompt(reference_audio, ref_text="Reference words here."),
        "icl_short_audio": tts.create_voice_clone_prompt(short_ref, ref_text="A much longer reference text."),
        "xvec": tts.create_voice_clone_prompt(reference_audio, x_vector_only_mode=True),
    }


@pytest.mark.parametrize(
    "text", (*TEXTS, "A long sentence, longer than the reference audio in frames for sure.")
)
@pytest.mark.parametrize("language", ["Auto", "english"])
@pytest.mark.parametrize("prompt_kind", ["icl", "icl_short_audio", "xvec"])
@pytest.mark.parametrize("non_streaming_mode", [None, False, True])
def test_voice_clone(tiny_base_tts, clone_prompts, text, language, prompt_kind, non_streaming_mode):
    tts = tiny_base_tts
    items = clone_prompts[prompt_kind]
    kw = {} if non_streaming_mode is None else {"non_streaming_mode": non_streaming_mode}
    theirs = capture_talker_inputs(
        tts, lambda: tts.generate_voice_clone(text, language=language, voice_clone_prompt=items, **kw)
    )
    req = SpeechRequest(
        text=text,
        mode="voice_clone",
        language=language,
        voice_prompt=to_voice_prompt(items[0]),
        non_streaming_mode=non_streaming_mode,
    )
    ours = build_prefill(tts.model, tts.processor, req)
    assert_same(ours, theirs)
    if prompt_kind == "xvec":
        assert ours.ref_code is None
    else:
        assert torch.equal(ours.ref_code, items[0].ref_code)


def test_voice_clone_icl_needs_ref_text(tiny_base_tts, clone_prompts):
    item = clone_prompts["icl"][0]
    vp = to_voice_prompt(item)
    vp.ref_text = None
    with pytest.raises(ValueError, match="ref_text"):
        build_prefill(
            tiny_base_tts.model,
            tiny_base_tts.processor,
            SpeechRequest(text="Hi.", mode="voice_clone", voice_prompt=vp),
        )


def test_small_custom_voice_drops_instruct(tmp_path):
    tts = load_qwen_tts(write_tiny_checkpoint(tmp_path, "custom_voice", model_size="0b6"), device="cpu",
                        dtype=torch.float32)
    theirs = capture_talker_inputs(
        tts,
        lambda: tts.generate_custom_voice("Hello.", speaker="ryan", language="english", instruct="Whisper."),
    )
    req = SpeechRequest(
        text="Hello.", mode="custom_voice", language="english", speaker="ryan", instruct="Whisper."
    )
    ours = build_prefill(tts.model, tts.processor, ModelVoices.of(tts).normalize(req))  # the rule's place
    assert_same(ours, theirs)
    no_instruct = build_prefill(
        tts.model,
        tts.processor,
        SpeechRequest(text="Hello.", mode="custom_voice", language="english", speaker="ryan"),
    )
    assert torch.equal(ours.inputs_embeds, no_instruct.inputs_embeds)
