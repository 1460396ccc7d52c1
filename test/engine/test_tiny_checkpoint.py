"""The tiny checkpoints load through qwen-tts's real loader and synthesise audio on CPU."""

import json

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint
from qwen3_tts_ros.engine.types import SAMPLE_RATE, SAMPLES_PER_FRAME

GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=40)


def test_files_and_config_pitfalls(tiny_custom_voice_dir):
    d = tiny_custom_voice_dir
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "speech_tokenizer/config.json",
        "speech_tokenizer/model.safetensors",
        "speech_tokenizer/preprocessor_config.json",
    ):
        assert (d / name).is_file(), name
    cfg = json.loads((d / "config.json").read_text())
    talker = cfg["talker_config"]
    assert "model_type" not in cfg["speaker_encoder_config"]
    assert sum(talker["rope_scaling"]["mrope_section"]) * 2 == talker["head_dim"]
    assert talker["hidden_size"] != talker["code_predictor_config"]["hidden_size"]
    control = [v for k, v in talker.items() if k.startswith("codec_") and isinstance(v, int)]
    control += list(talker["codec_language_id"].values()) + list(talker["spk_id"].values())
    assert min(control) >= talker["vocab_size"] - 1024
    assert any(v for v in talker["spk_is_dialect"].values())
    st = json.loads((d / "speech_tokenizer/config.json").read_text())
    dec = st["decoder_config"]
    assert int(np.prod(dec["upsample_rates"]) * np.prod(dec["upsampling_ratios"])) == SAMPLES_PER_FRAME


def _frames(codes_len_samples):
    assert codes_len_samples % SAMPLES_PER_FRAME == 0
    return codes_len_samples // SAMPLES_PER_FRAME


def test_custom_voice_generates(tiny_custom_voice_tts):
    tts = tiny_custom_voice_tts
    assert tts.model.tts_model_type == "custom_voice" and tts.model.tts_model_size == "1b7"
    wavs, sr = tts.generate_custom_voice(
        "Hello there.", speaker="vivian", language="english", instruct="Speak softly.", **GREEDY
    )
    assert sr == SAMPLE_RATE and wavs[0].dtype == np.float32
    assert 5 <= _frames(len(wavs[0])) <= GREEDY["max_new_tokens"] - 1
    assert np.abs(wavs[0]).max() > 0


def test_voice_design_generates(tiny_voice_design_tts):
    wavs, sr = tiny_voice_design_tts.generate_voice_design("Hello there.", instruct="A calm voice.", **GREEDY)
    assert sr == SAMPLE_RATE and 2 <= _frames(len(wavs[0])) <= GREEDY["max_new_tokens"] - 1


def test_voice_clone_generates(tiny_base_tts, reference_audio):
    tts = tiny_base_tts
    prompt = tts.create_voice_clone_prompt(reference_audio, ref_text="Some words.")
    assert prompt[0].ref_code.shape == (13, 16)  # ceil(24000 / 1920)
    wavs, sr = tts.generate_voice_clone("Hello there.", voice_clone_prompt=prompt, **GREEDY)
    assert sr == SAMPLE_RATE and len(wavs[0]) > 5 * SAMPLES_PER_FRAME
    xvec = tts.create_voice_clone_prompt(reference_audio, x_vector_only_mode=True)
    wavs, sr = tts.generate_voice_clone("Hello there.", voice_clone_prompt=xvec, **GREEDY)
    assert 5 <= _frames(len(wavs[0])) <= GREEDY["max_new_tokens"] - 1


def test_random_generation_is_not_degenerate(tiny_custom_voice_tts):
    """Sampled and greedy codes vary over frames and codebooks, and do not stop at the first step."""
    model = tiny_custom_voice_tts.model
    proc = tiny_custom_voice_tts.processor
    for text in ("Hello world.", "Another, longer sentence for the tiny model.", "你好，世界"):
        ids = proc(
            text=f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt"
        )["input_ids"]
        codes, _ = model.generate(
            input_ids=[ids],
            languages=["auto"],
            speakers=["ryan"],
            max_new_tokens=40,
            do_sample=False,
            subtalker_dosample=False,
        )
        c = codes[0]
        assert c.shape[0] >= 10, text
        assert len(torch.unique(c[:, 0])) > 3 and len(torch.unique(c[0])) > 3


def test_small_model_size_and_seed(tmp_path):
    from qwen_tts import Qwen3TTSModel

    a = write_tiny_checkpoint(tmp_path / "a", "custom_voice", model_size="0b6", seed=5)
    b = write_tiny_checkpoint(tmp_path / "b", "custom_voice", model_size="0b6", seed=5)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    tts = Qwen3TTSModel.from_pretrained(str(a), dtype=torch.float32)
    assert isinstance(tts.model.talker.code_predictor.small_to_mtp_projection, torch.nn.Identity)
    wavs, _ = tts.generate_custom_voice("Hi.", speaker="eric", language="chinese", **GREEDY)
    assert len(wavs[0]) % SAMPLES_PER_FRAME == 0 and len(wavs[0]) > 0


def test_unknown_kind_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_tiny_checkpoint(tmp_path, "nope")
