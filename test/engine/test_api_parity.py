"""Qwen3TTSCudaGraphs's generate_* API gives qwen-tts's waveforms (greedy, float32, CPU, tiny checkpoints).

Same arguments to both; qwen-tts is the reference. List inputs: we generate the items one after the
other (batch size 1), so they are compared with qwen-tts called once per item: qwen-tts's own batched
call decodes a padded batch, whose float rounding differs from its per-item calls at a few samples.
"""

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs, VoicePrompt
from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=12)
pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def engines(tiny_tts_by_kind):
    return {kind: Qwen3TTSCudaGraphs(tts, max_seq_len=256) for kind, tts in tiny_tts_by_kind.items()}


def qwen_tts_per_item(method, args, list_keys):
    """Call a qwen-tts method once per list item; -> (wavs, sr) like one batched call."""
    n = len(args["text"])
    wavs = []
    for i in range(n):
        item = {k: (v[i] if k in list_keys and isinstance(v, list) else v) for k, v in args.items()}
        item_wavs, sr = method(**item, **GREEDY)
        wavs += item_wavs
    return wavs, sr


def assert_same_wavs(ours, theirs):
    wavs, sr = ours
    ref_wavs, ref_sr = theirs
    assert sr == ref_sr == 24000
    assert len(wavs) == len(ref_wavs)
    for wav, ref in zip(wavs, ref_wavs):
        assert wav.dtype == np.float32
        assert wav.shape == ref.shape
        np.testing.assert_array_equal(wav, ref)


@pytest.mark.parametrize(
    "args",
    [
        dict(text="Hello world, this is a test.", speaker="vivian", language="english"),
        dict(
            text="Short one.",
            speaker="Ryan",
            language="Auto",
            instruct="Speak fast.",
            non_streaming_mode=False,
        ),
        dict(text="你好，今天天气很好。", speaker="eric", language="chinese"),
        dict(
            text=["First text.", "Second, longer text here."], speaker="vivian", language=["english", "auto"]
        ),
    ],
)
def test_custom_voice_equals_qwen_tts(engines, tiny_custom_voice_tts, args):
    ours = engines["custom_voice"].generate_custom_voice(**args, **GREEDY)
    if isinstance(args["text"], list):
        theirs = qwen_tts_per_item(tiny_custom_voice_tts.generate_custom_voice, args, ("text", "language"))
    else:
        theirs = tiny_custom_voice_tts.generate_custom_voice(**args, **GREEDY)
    assert_same_wavs(ours, theirs)


@pytest.mark.parametrize(
    "args",
    [
        dict(text="Hello there.", instruct="A deep calm voice.", language="english"),
        dict(text="No instruct.", instruct="", non_streaming_mode=False),
        dict(text=["One.", "Two two."], instruct=["Happy.", "Sad."]),
    ],
)
def test_voice_design_equals_qwen_tts(engines, tiny_voice_design_tts, args):
    ours = engines["voice_design"].generate_voice_design(**args, **GREEDY)
    if isinstance(args["text"], list):
        theirs = qwen_tts_per_item(tiny_voice_design_tts.generate_voice_design, args, ("text", "instruct"))
    else:
        theirs = tiny_voice_design_tts.generate_voice_design(**args, **GREEDY)
    assert_same_wavs(ours, theirs)


@pytest.mark.parametrize(
    "args",
    [
        dict(text="Clone this voice.", ref_text="A reference sentence."),  # ICL, reference part cut
        dict(text="Clone this voice.", ref_text="A reference sentence.", non_streaming_mode=True),
        dict(text="X vector only.", x_vector_only_mode=True, language="english"),
        dict(text=["Two texts.", "One voice."], ref_text="Reference words."),
    ],
)
def test_voice_clone_equals_qwen_tts(engines, tiny_base_tts, reference_audio, args):
    args = dict(args, ref_audio=reference_audio)
    ours = engines["base"].generate_voice_clone(**args, **GREEDY)
    if isinstance(args["text"], list):
        theirs = qwen_tts_per_item(tiny_base_tts.generate_voice_clone, args, ("text",))
    else:
        theirs = tiny_base_tts.generate_voice_clone(**args, **GREEDY)
    assert_same_wavs(ours, theirs)


def test_voice_clone_prompt_forms_equal_qwen_tts(engines, tiny_base_tts, reference_audio):
    engine = engines["base"]
    items = engine.create_voice_clone_prompt(reference_audio, ref_text="Reference words.")
    theirs = tiny_base_tts.generate_voice_clone("Prompt reuse.", voice_clone_prompt=items, **GREEDY)
    # qwen-tts items, our VoicePrompt, and a list of VoicePrompts all give the same audio
    assert_same_wavs(engine.generate_voice_clone("Prompt reuse.", voice_clone_prompt=items, **GREEDY), theirs)
    prompt = engine.create_voice_prompt(reference_audio, ref_text="Reference words.")
    assert isinstance(prompt, VoicePrompt)
    assert_same_wavs(
        engine.generate_voice_clone("Prompt reuse.", voice_clone_prompt=prompt, **GREEDY), theirs
    )
    assert_same_wavs(
        engine.generate_voice_clone("Prompt reuse.", voice_clone_prompt=[prompt], **GREEDY), theirs
    )


def test_sampling_defaults_merged_like_qwen_tts(engines, tiny_custom_voice_tts):
    engine = engines["custom_voice"]
    sampling = engine.sampling_params(top_k=7, max_new_tokens=None)
    defaults = tiny_custom_voice_tts.generate_defaults
    merged = tiny_custom_voice_tts._merge_generate_kwargs(top_k=7)
    for name, value in merged.items():
        assert getattr(sampling, name) == value, (name, defaults)
    with pytest.raises(TypeError, match="top_k"):
        engine.generate_custom_voice("x", "vivian", bogus_setting=1)


def test_0b6_custom_voice_drops_instruct(tmp_path):
    path = write_tiny_checkpoint(tmp_path / "cv_0b6", "custom_voice", seed=3, model_size="0b6")
    tts = load_qwen_tts(path, device="cpu", dtype=torch.float32)
    engine = Qwen3TTSCudaGraphs(tts, max_seq_len=256)
    args = dict(text="Instruct is ignored.", speaker="vivian", instruct="Whisper please.", **GREEDY)
    ours = engine.generate_custom_voice(**args)
    assert_same_wavs(ours, tts.generate_custom_voice(**args))
    without = engine.generate_custom_voice(**{**args, "instruct": None})
    np.testing.assert_array_equal(ours[0][0], without[0][0])


def test_wrong_values_raise_value_errors_naming_allowed(engines, reference_audio):
    custom, design, base = engines["custom_voice"], engines["voice_design"], engines["base"]
    with pytest.raises(ValueError, match="vivian"):
        custom.generate_custom_voice("Hi.", speaker="nobody")
    with pytest.raises(ValueError, match="english"):
        custom.generate_custom_voice("Hi.", speaker="vivian", language="klingon")
    with pytest.raises(ValueError, match="english"):
        design.generate_voice_design("Hi.", instruct="x", language="klingon")
    with pytest.raises(ValueError, match="generate_custom_voice"):
        design.generate_custom_voice("Hi.", speaker="vivian")
    with pytest.raises(ValueError, match="generate_voice_clone"):
        custom.generate_voice_clone("Hi.", ref_audio=reference_audio, x_vector_only_mode=True)
    with pytest.raises(ValueError, match="generate_voice_design"):
        base.generate_voice_design("Hi.", instruct="x")
    with pytest.raises(ValueError, match="ref_audio"):
        base.generate_voice_clone("Hi.")
    with pytest.raises(ValueError, match="ref_text"):
        base.generate_voice_clone("Hi.", ref_audio=reference_audio)  # ICL needs the reference text
    with pytest.raises(ValueError, match="Batch size mismatch"):
        custom.generate_custom_voice(["a", "b", "c"], speaker=["vivian", "ryan"])
    assert custom.tts_model_type == "custom_voice" and custom.sample_rate == 24000
    assert custom.get_supported_speakers() == custom.tts.get_supported_speakers()
    assert base.get_supported_languages() == base.tts.get_supported_languages()
