"""The engine's own rules for what a caller gives it: every sampling setting and the other request fields."""
import math
import os

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine.audio.audio_stream import check_chunking
from qwen3_tts_ros.engine.config import EngineConfig, open_engine
from qwen3_tts_ros.engine.errors import EngineConfigError, ModelLoadError
from qwen3_tts_ros.engine.types import HARD_DEFAULTS, SAMPLING_RULES, SamplingParams, SpeechRequest
from qwen3_tts_ros.engine.voice import ModelVoices

# field -> (values it takes, values it refuses, a word its refusal must contain)
CASES = {
    "do_sample": ([True, False, np.bool_(False)], [1, "yes", None], "true or false"),
    "subtalker_dosample": ([True, False], [0, "no"], "true or false"),
    "top_k": ([0, 1, 50, np.int64(7)], [-1, 2.5, True, math.inf], "integer >= 0"),
    "subtalker_top_k": ([0, 50], [-3, 1.0], "integer >= 0"),
    "top_p": ([0.0, 0.5, 1, 1.0], [-0.1, 1.5, math.nan, "1"], "range [0, 1]"),
    "subtalker_top_p": ([0.0, 1.0], [1.01, math.inf], "range [0, 1]"),
    "temperature": ([1e-3, 0.9, 20, np.float32(2)], [0, 0.0, -1.0, math.nan, math.inf], "> 0"),
    "subtalker_temperature": ([0.9], [0.0, -0.5], "> 0"),
    "repetition_penalty": ([1.0, 1.05, 0.5], [0.0, -1.0, math.nan], "> 0"),
    "max_new_tokens": ([1, 2048], [0, -1, 10.0], "integer >= 1"),
    "min_new_tokens": ([0, 2], [-1, 0.5], "integer >= 0"),
}


def test_every_field_has_a_rule_and_a_case():
    assert set(SAMPLING_RULES) == {f for f in SamplingParams.__dataclass_fields__} == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_sampling_setting_is_refused_with_its_name_and_its_range(name):
    good, bad, words = CASES[name]
    for value in good:
        assert getattr(SamplingParams(**{name: value}), name) == value
        SamplingParams.check_overrides(**{name: value})
    for value in bad:
        with pytest.raises(ValueError) as refused:
            SamplingParams(**{name: value})
        message = str(refused.value)
        assert message.startswith(f"{name} must be ") and words in message and repr(value) in message, message
        if value is not None:  # None given to merged: not given (the model's default)
            with pytest.raises(ValueError, match=f"^{name} must be "):
                SamplingParams.merged(HARD_DEFAULTS, **{name: value})


def test_the_divide_by_zero_of_issue_12_is_refused():
    """SamplingParams(temperature=0) used to be accepted and the sampler computed 1/0 (sampling.py)."""
    with pytest.raises(ValueError, match=r"temperature must be a number > 0 .*do_sample false"):
        SamplingParams(temperature=0)


def test_none_is_the_models_default_and_unknown_names_are_a_type_error():
    SamplingParams.check_overrides(temperature=None, top_k=None)
    assert SamplingParams.merged({"temperature": 0.7}, temperature=None).temperature == 0.7
    assert SamplingParams.merged(None, temperature=None).temperature == HARD_DEFAULTS["temperature"]
    with pytest.raises(TypeError, match="bogus"):
        SamplingParams.check_overrides(bogus=1)


def test_request_fields_are_checked():
    SpeechRequest(text="x", mode="custom_voice", speaker="vivian", language=None)
    with pytest.raises(ValueError, match="mode must be one of"):
        SpeechRequest(text="x", mode="clone")
    with pytest.raises(TypeError, match="text must be a str"):
        SpeechRequest(text=None, mode="voice_design")
    with pytest.raises(TypeError, match="sampling must be a SamplingParams"):
        SpeechRequest(text="x", mode="voice_design", sampling={"temperature": 0.9})
    with pytest.raises(TypeError, match="non_streaming_mode"):
        SpeechRequest(text="x", mode="voice_design", non_streaming_mode="yes")


def test_chunking_is_refused_per_setting():
    check_chunking(1, 4, "int16")
    with pytest.raises(ValueError, match=r"^first_chunk_frames must be an integer >= 1, got 0$"):
        check_chunking(0, 4, "int16")
    with pytest.raises(ValueError, match=r"^chunk_frames must be an integer >= 1, got 2.5$"):
        check_chunking(1, 2.5, "int16")
    with pytest.raises(ValueError, match="pcm_format"):
        check_chunking(1, 4, "int8")


def test_engine_config_refuses_what_it_cannot_use_once_with_one_message():
    assert EngineConfig().buckets() == (32, 64, 128, 256)
    assert EngineConfig(max_seq_len=100).buckets() == (32, 64)  # None: the suggested sizes that fit
    assert EngineConfig(prefill_buckets=[64]).prefill_buckets == (64,)
    refused = [
        (dict(max_seq_len=256, prefill_buckets=(64, 512)),
         r"^prefill_buckets \[64, 512\] must be <= max_seq_len=256$"),
        (dict(prefill_buckets=(32, -1)), r"^prefill_buckets must be positive prompt lengths, got \[32, -1\]"),
        (dict(max_seq_len=12), r"^max_seq_len must be an integer >= 64, got 12$"),
        (dict(device="tpu"), r"^device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'$"),
        (dict(dtype="int8"), r"^dtype must be 'auto' or one of"),
        (dict(model="https://huggingface.co/Qwen/x"), "not a URL"),
        (dict(compile="yes"), r"^compile must be true or false, got 'yes'$"),
        (dict(fused_kernels=1), r"^fused_kernels must be true or false, got 1$"),
    ]
    for settings, message in refused:
        with pytest.raises(ValueError, match=message):
            EngineConfig(**settings)


def test_open_engine_loads_and_names_what_it_cannot_load(tiny_custom_voice_dir, tmp_path):
    engine = open_engine(EngineConfig(model=str(tiny_custom_voice_dir), device="cpu", max_seq_len=128))
    assert (engine.source, engine.device.type, engine.max_seq_len) == (str(tiny_custom_voice_dir), "cpu", 128)
    assert engine.capture_report().frame_path == "eager"  # CPU: nothing to compile
    engine.close()
    with pytest.raises(ModelLoadError, match=r"^cannot load model '.*nope': FileNotFoundError: model dir"):
        open_engine(EngineConfig(model=str(tmp_path / "nope"), device="cpu"))
    if os.environ.get("TRITON_INTERPRET") != "1":  # the fused frame runs on CPU only interpreted (tests)
        refused = r"^fused_kernels: frame path 'fused-triton' cannot run on cpu: "
        refused += r"needs CUDA with Triton >= 3 .*, and the device is cpu$"
        with pytest.raises(EngineConfigError, match=refused):
            open_engine(EngineConfig(model=str(tiny_custom_voice_dir), device="cpu", fused_kernels=True))
    if not torch.cuda.is_available():
        with pytest.raises(EngineConfigError, match="CUDA is not available"):
            open_engine(EngineConfig(model=str(tiny_custom_voice_dir), device="cuda"))


def test_voice_rules_live_in_model_voices():
    small = ModelVoices("custom_voice", "0b6", ("auto", "english"), ("ryan", "vivian"))
    big = ModelVoices("custom_voice", "1b7", ("auto", "english"), ("ryan", "vivian"))
    assert (small.mode, small.first_speaker()) == ("custom_voice", "ryan")
    assert not small.takes_instruct("custom_voice") and big.takes_instruct("custom_voice")
    request = SpeechRequest(
        text="Hi.", mode="custom_voice", language="English", speaker="Ryan", instruct="Whisper."
    )
    assert small.normalize(request).instruct is None and big.normalize(request).instruct == "Whisper."
    normal = big.normalize(request)
    assert big.normalize(normal) == normal and normal.non_streaming_mode is True  # qwen-tts's default
    with pytest.raises(ValueError, match=r"^speaker .nobody. not supported by this model; supported: \["):
        big.normalize(SpeechRequest(text="Hi.", mode="custom_voice", speaker="nobody"))
    with pytest.raises(ValueError, match=r"^language 'Klingon' not supported by this model; supported: "):
        big.normalize(SpeechRequest(text="Hi.", mode="custom_voice", speaker="ryan", language="Klingon"))
    with pytest.raises(ValueError, match="generate_voice_design needs a 'voice_design' model"):
        big.normalize(SpeechRequest(text="Hi.", mode="voice_design", instruct="calm"))
    design = ModelVoices("voice_design", "1b7", None, None)
    kept = design.normalize(SpeechRequest(text="Hi.", mode="voice_design", instruct="calm", speaker="ryan"))
    assert (kept.speaker, kept.instruct, kept.language) == (None, "calm", "Auto")  # speaker: not used
