"""Full-size random Qwen3-TTS model directories with the exact released architecture (GPU benchmarks).

No weights can be downloaded here, so benchmarks build the released 0.6B / 1.7B talker + code predictor
(shared/reference/qwen3-tts.md §2.2: 28 layers, GQA 16/8, head_dim 128, codec vocab 3072, the real control,
language and speaker ids) and the released 12 Hz codec decoder, with random weights, and write a model
directory that `qwen_tts.Qwen3TTSModel.from_pretrained` loads like a downloaded one. Speed depends on shapes,
not on weight values; the text tokenizer is the tests' byte-level one, or their trained BPE
(text_tokenizer="bpe"); the ids of either are valid in the 151936 vocab.
"""

from __future__ import annotations

import json
import pathlib

import torch

from qwen3_tts_ros.engine.checkpoints.bpe_tokenizer import write_bpe_text_tokenizer
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import (
    DIALECTS,
    GENERATION_CONFIG,
    LANGUAGES,
    SPEAKERS,
    keep_released_talker_format,
    write_speech_tokenizer,
)
from qwen3_tts_ros.engine.checkpoints.tiny_tokenizer import TEXT_TOKEN_CONFIG, write_text_tokenizer

SIZES = {"0b6": (1024, 3072), "1b7": (2048, 6144)}  # talker hidden, intermediate
CONTROL_BASE = 2048  # codec ids 0..2047 are audio codes; control/language/speaker ids start here
CODE_PREDICTOR = dict(
    vocab_size=2048,
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=5,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    num_code_groups=16,
    max_position_embeddings=65536,
    rope_theta=1000000,
    rms_norm_eps=1e-6,
)


def released_config_dict(size: str, kind: str, text_token_config: dict[str, int] = TEXT_TOKEN_CONFIG) -> dict:
    """config.json of a released 12 Hz model of `size` ("0b6"/"1b7") and `kind` (base/custom_voice/...)."""
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig

    hidden, intermediate = SIZES[size]
    language_id = {name: CONTROL_BASE + off for name, off in LANGUAGES.items()}
    spk_id, spk_is_dialect = {}, {}
    if kind == "custom_voice":
        language_id.update({name: CONTROL_BASE + off for name, off in DIALECTS.items()})
        for name, (off, dialect) in SPEAKERS.items():
            spk_id[name] = CONTROL_BASE + off
            spk_is_dialect[name] = dialect
    talker = dict(
        code_predictor_config=CODE_PREDICTOR,
        vocab_size=3072,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        text_vocab_size=151936,
        text_hidden_size=2048,
        num_code_groups=16,
        max_position_embeddings=32768,
        rope_theta=1000000,
        rms_norm_eps=1e-6,
        rope_scaling={"interleaved": True, "mrope_section": [24, 20, 20], "rope_type": "default"},
        position_id_per_seconds=13,
        codec_language_id=language_id,
        spk_id=spk_id,
        spk_is_dialect=spk_is_dialect,
        codec_pad_id=2148,
        codec_bos_id=2149,
        codec_eos_token_id=2150,
        codec_think_id=2154,
        codec_nothink_id=2155,
        codec_think_bos_id=2156,
        codec_think_eos_id=2157,
    )
    speaker_encoder = {"enc_dim": hidden, "sample_rate": 24000}
    cfg = Qwen3TTSConfig(
        talker_config=talker,
        speaker_encoder_config=speaker_encoder,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size=size,
        tts_model_type=kind,
        **text_token_config,
    )
    cfg.architectures = ["Qwen3TTSForConditionalGeneration"]
    d = cfg.to_dict()
    d["speaker_encoder_config"] = speaker_encoder  # the config class takes no model_type kwarg on reload
    d["talker_config"]["text_vocab_size"] = 151936
    d["talker_config"]["head_dim"] = 128
    keep_released_talker_format(d["talker_config"], talker)
    return d


def write_full_size_checkpoint(
    out_dir, size: str = "0b6", kind: str = "custom_voice", seed: int = 0, text_tokenizer: str = "bytes"
):
    """Write a loadable full-size random model directory (bf16 weights); returns its path.

    The model is built and randomly initialised (transformers' own init) on the GPU when there is one.
    text_tokenizer: "bytes" (the tests' byte-level one) or "bpe" (the trained BPE with Qwen2's pipeline,
    engine/checkpoints/bpe_tokenizer.py: text tokens about as long as a real vocabulary's; ids < 1000).
    """
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration
    from safetensors.torch import save_file

    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if text_tokenizer == "bpe":
        _, text_token_config = write_bpe_text_tokenizer(out)
    elif text_tokenizer == "bytes":
        write_text_tokenizer(out)
        text_token_config = TEXT_TOKEN_CONFIG
    else:
        raise ValueError(f"text_tokenizer must be 'bytes' or 'bpe', got {text_tokenizer!r}")
    config = released_config_dict(size, kind, text_token_config)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2), encoding="utf-8")
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen3TTSForConditionalGeneration(Qwen3TTSConfig(**config))
    state = {k: v.to(torch.bfloat16).contiguous().cpu() for k, v in model.state_dict().items()}
    del model
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    write_speech_tokenizer(out / "speech_tokenizer", size="released", seed=seed + 1)
    return out
