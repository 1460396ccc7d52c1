"""Tiny random Qwen3-TTS checkpoints that qwen-tts's own loader accepts (tests, CPU, seconds).

`write_tiny_checkpoint(dir, kind)` writes a complete model directory with the layout of the released
12 Hz models (config.json, generation_config.json, model.safetensors, byte-level Qwen2 tokenizer or,
with text_tokenizer="bpe", a trained BPE one, preprocessor_config.json, speech_tokenizer/) but tiny
widths and few layers. The architecture choices that matter for the engine are kept: GQA 2:1,
interleaved M-RoPE, talker hidden != code-predictor hidden (so small_to_mtp_projection is a Linear, the
1.7B path), 16 code groups, control ids in the top 1024 of the codec vocabulary, real codec up-sampling
rates (1920 samples per frame at 24 kHz).

Reusable pieces for full-size random checkpoints (GPU benchmarks): `write_text_tokenizer(dir)` with
`TEXT_TOKEN_CONFIG` (the top-level config.json token ids that match it; its ids are < any real
text_vocab_size), `speech_tokenizer_config("released")` / `write_speech_tokenizer(dir, size="released")`
for the exact released codec architecture, and `GENERATION_CONFIG` (the released generation_config.json).
"""

from __future__ import annotations

import json
import pathlib

import torch

from .tiny_tokenizer import TEXT_TOKEN_CONFIG, TEXT_VOCAB_SIZE, write_text_tokenizer

KINDS = ("base", "custom_voice", "voice_design")
TEXT_TOKENIZERS = ("bytes", "bpe")

CODEBOOK_SIZE = 64
CODEC_VOCAB_SIZE = CODEBOOK_SIZE + 1024  # control ids live in the top 1024
CODEC_IDS = dict(  # same offsets from the control base as the released models (base 2048)
    codec_pad_id=CODEBOOK_SIZE + 100,
    codec_bos_id=CODEBOOK_SIZE + 101,
    codec_eos_token_id=CODEBOOK_SIZE + 102,
    codec_think_id=CODEBOOK_SIZE + 106,
    codec_nothink_id=CODEBOOK_SIZE + 107,
    codec_think_bos_id=CODEBOOK_SIZE + 108,
    codec_think_eos_id=CODEBOOK_SIZE + 109,
)
LANGUAGES = {
    "chinese": 7,
    "english": 2,
    "german": 5,
    "spanish": 6,
    "japanese": 10,
    "korean": 16,
    "french": 13,
    "russian": 21,
    "italian": 22,
    "portuguese": 23,
}
DIALECTS = {"beijing_dialect": 26, "sichuan_dialect": 14}
# custom_voice speakers: name -> (codec row offset from the control base, dialect or False)
SPEAKERS = {
    "vivian": (1017, False),
    "ryan": (1013, False),
    "eric": (827, "sichuan_dialect"),
    "dylan": (830, "beijing_dialect"),
}

GENERATION_CONFIG = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.9,
    "top_p": 1.0,
    "top_k": 50,
    "subtalker_dosample": True,
    "subtalker_temperature": 0.9,
    "subtalker_top_p": 1.0,
    "subtalker_top_k": 50,
    "max_new_tokens": 8192,
}

TALKER_HIDDEN = {"1b7": 48, "0b6": 32}  # "0b6": talker hidden == code-predictor hidden -> Identity projection
CODE_PREDICTOR_HIDDEN = 32
# Random init std. Larger than HF's 0.02 so that greedy decoding of a random model is not flat/degenerate.
INIT_STD = 0.2
EOS_ROW_SCALE = 1.5


def tiny_config_dict(
    kind: str,
    model_size: str,
    text_vocab_size: int = TEXT_VOCAB_SIZE,
    text_token_config: dict[str, int] = TEXT_TOKEN_CONFIG,
) -> dict:
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig

    hidden = TALKER_HIDDEN[model_size]
    control_base = CODEBOOK_SIZE
    language_id = {name: control_base + off for name, off in LANGUAGES.items()}
    spk_id: dict[str, int] = {}
    spk_is_dialect: dict[str, str | bool] = {}
    if kind == "custom_voice":
        language_id.update({name: control_base + off for name, off in DIALECTS.items()})
        for name, (off, dialect) in SPEAKERS.items():
            spk_id[name] = control_base + off
            spk_is_dialect[name] = dialect
    code_predictor = dict(
        vocab_size=CODEBOOK_SIZE,
        hidden_size=CODE_PREDICTOR_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        num_code_groups=16,
        max_position_embeddings=65536,
        rope_theta=1000000,
        rms_norm_eps=1e-6,
        initializer_range=INIT_STD,
    )
    talker = dict(
        code_predictor_config=code_predictor,
        vocab_size=CODEC_VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        text_vocab_size=text_vocab_size,
        text_hidden_size=40,
        num_code_groups=16,
        max_position_embeddings=32768,
        rope_theta=1000000,
        rms_norm_eps=1e-6,
        initializer_range=INIT_STD,
        rope_scaling={"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default"},
        position_id_per_seconds=13,
        codec_language_id=language_id,
        spk_id=spk_id,
        spk_is_dialect=spk_is_dialect,
        **CODEC_IDS,
    )
    speaker_encoder = dict(
        mel_dim=128,
        enc_dim=hidden,
        enc_channels=[16, 16, 16, 16, 48],
        enc_kernel_sizes=[5, 3, 3, 3, 1],
        enc_dilations=[1, 2, 3, 4, 1],
        enc_attention_channels=16,
        enc_res2net_scale=4,
        enc_se_channels=16,
        sample_rate=24000,
    )
    cfg = Qwen3TTSConfig(
        talker_config=talker,
        speaker_encoder_config=speaker_encoder,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size=model_size,
        tts_model_type=kind,
        **text_token_config,
    )
    cfg.architectures = ["Qwen3TTSForConditionalGeneration"]
    d = cfg.to_dict()
    # Qwen3TTSSpeakerEncoderConfig takes no **kwargs: the "model_type" that to_dict adds breaks reload.
    d["speaker_encoder_config"] = speaker_encoder
    # text_vocab_size and head_dim are only read through kwargs; make sure they survive the dump.
    d["talker_config"]["text_vocab_size"] = text_vocab_size
    d["talker_config"]["head_dim"] = talker["head_dim"]
    keep_released_talker_format(d["talker_config"], talker)
    return d


def keep_released_talker_format(dumped: dict, talker: dict) -> None:
    """Keep a talker_config that `Qwen3TTSConfig.to_dict()` dumped in the released config.json's format.

    The released config.json is a transformers-4.57 dump. transformers 5 (qwen-tts-compat) dumps rope_scaling
    as rope_parameters (qwen-tts-compat then reloads rope_scaling as None) and no longer writes the code
    predictor's "pad_token_id": null, which qwen-tts-compat reads. No-op under transformers 4.57.
    `talker`: the talker_config kwargs the config was made from.
    """
    pairs = ((dumped, talker), (dumped["code_predictor_config"], talker["code_predictor_config"]))
    for sub, source in pairs:
        sub.pop("rope_parameters", None)
        sub["rope_scaling"] = source.get("rope_scaling")
        sub.setdefault("pad_token_id", None)


# Decoder of the released Qwen3-TTS-Tokenizer-12Hz (speech_tokenizer/config.json); the encoder is
# transformers' MimiConfig with its (Kyutai Mimi) defaults.
RELEASED_SPEECH_DECODER = dict(
    codebook_size=2048,
    codebook_dim=512,
    hidden_size=512,
    latent_dim=1024,
    intermediate_size=1024,
    head_dim=64,
    num_attention_heads=16,
    num_key_value_heads=16,
    num_hidden_layers=8,
    num_quantizers=16,
    num_semantic_quantizers=1,
    semantic_codebook_size=4096,
    sliding_window=72,
    max_position_embeddings=8000,
    rope_theta=10000,
    rms_norm_eps=1e-5,
    layer_scale_initial_scale=0.01,
    upsample_rates=[8, 5, 4, 3],
    upsampling_ratios=[2, 2],
    decoder_dim=1536,
    vector_quantization_hidden_dimension=512,
)
TINY_SPEECH_DECODER = dict(
    codebook_size=CODEBOOK_SIZE,
    codebook_dim=16,
    hidden_size=32,
    latent_dim=32,
    intermediate_size=64,
    head_dim=8,
    num_attention_heads=4,
    num_key_value_heads=4,
    num_hidden_layers=2,
    num_quantizers=16,
    sliding_window=72,
    max_position_embeddings=8000,
    upsample_rates=[8, 5, 4, 3],  # the real rates: 2*2*8*5*4*3 = 1920 samples per frame
    upsampling_ratios=[2, 2],
    decoder_dim=32,
    vector_quantization_hidden_dimension=16,
)
TINY_SPEECH_ENCODER = dict(
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=4,
    num_key_value_heads=4,
    head_dim=8,
    intermediate_size=64,
    num_filters=4,
    upsample_groups=32,
    num_quantizers=16,
    codebook_size=CODEBOOK_SIZE,
    codebook_dim=16,
    vector_quantization_hidden_dimension=16,
    sampling_rate=24000,
    frame_rate=12.5,
    upsampling_ratios=[8, 6, 5, 4],
)


def speech_tokenizer_config(size: str = "tiny"):
    """Qwen3TTSTokenizerV2Config of the 12 Hz codec: "tiny" (tests) or "released" (exact real architecture).

    Both keep the real rates: 24 kHz, 1920 samples per codec frame, 16 code groups.
    """
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Config

    if size == "tiny":
        encoder, decoder = TINY_SPEECH_ENCODER, TINY_SPEECH_DECODER
    elif size == "released":
        encoder, decoder = {}, RELEASED_SPEECH_DECODER
    else:
        raise ValueError(f"size must be 'tiny' or 'released', got {size!r}")
    cfg = Qwen3TTSTokenizerV2Config(
        encoder_config=dict(encoder), decoder_config=dict(decoder), encoder_valid_num_quantizers=16
    )
    cfg.architectures = ["Qwen3TTSTokenizerV2Model"]
    return cfg


def write_speech_tokenizer(
    out_dir, *, size: str = "tiny", seed: int = 0, audio_range: bool = False
) -> pathlib.Path:
    """Write a random-init `speech_tokenizer/`-style directory (config, weights, feature-extractor config).

    The default init drives the decoder output far beyond +-1 (all samples clip). audio_range=True gives
    its decoder a gain-preserving init instead (see `_audio_range_decoder_init_`): waveforms of std ~0.2
    that rarely clip, so comparisons of two decodes measure float rounding instead of clipping.
    """
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Model

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    codec = Qwen3TTSTokenizerV2Model(speech_tokenizer_config(size))
    _random_init_(codec, torch.Generator().manual_seed(seed))
    if audio_range:
        _audio_range_decoder_init_(codec.decoder, torch.Generator().manual_seed(seed))
    codec.save_pretrained(str(out))
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "chunk_length_s": None,
                "feature_extractor_type": "EncodecFeatureExtractor",
                "feature_size": 1,
                "overlap": None,
                "padding_side": "right",
                "padding_value": 0.0,
                "return_attention_mask": True,
                "sampling_rate": 24000,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    return out


def _random_init_(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Seeded init independent of HF's _init_weights: normal(INIT_STD) matrices, unit norms, zero biases."""
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        with torch.no_grad():
            if p.dim() == 1:
                if "norm" in name or leaf in ("gamma", "alpha", "beta", "scale") or "layer_scale" in name:
                    p.fill_(1.0)
                else:
                    p.zero_()
            else:
                fan_in = p[0].numel()
                std = INIT_STD if "embed" in name else min(INIT_STD, 1.0 / fan_in**0.5) * 2.0
                p.copy_(torch.randn(p.shape, generator=generator) * std)
    for name, b in module.named_buffers():
        if name.endswith(("embed_sum", "embedding_sum")):  # codec codebooks are buffers (zeros after init)
            with torch.no_grad():
                b.copy_(torch.randn(b.shape, generator=generator))


def random_speech_decoder(size: str = "tiny", *, seed: int = 0, audio_range: bool = True):
    """The 12 Hz codec's decoder alone (`Qwen3TTSTokenizerV2Decoder`, float32, CPU, eval), random weights
    as write_speech_tokenizer gives them; quicker than writing and loading a whole released-size codec."""
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import Qwen3TTSTokenizerV2Decoder

    decoder = Qwen3TTSTokenizerV2Decoder._from_config(speech_tokenizer_config(size).decoder_config)
    _random_init_(decoder, torch.Generator().manual_seed(seed))
    if audio_range:
        _audio_range_decoder_init_(decoder, torch.Generator().manual_seed(seed))
    return decoder.eval()


def _audio_range_decoder_init_(decoder: torch.nn.Module, generator: torch.Generator) -> None:
    """Gain-preserving random init of a 12 Hz codec decoder: codebook usage 1, matrices of std
    1/sqrt(fan_in) (transposed convolutions: per output sample), SnakeBeta alpha = beta = 1 (log 0), layer
    scales and ConvNeXt gamma 0.1, residual-unit output convs x0.3, output conv x0.1."""
    with torch.no_grad():
        for name, p in decoder.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("cluster_usage", "weight") and p.dim() == 1:  # usage counts, norm weights
                p.fill_(1.0)
            elif leaf in ("gamma", "scale"):
                p.fill_(0.1)
            elif p.dim() == 1:  # biases, SnakeBeta log-alpha / log-beta
                p.zero_()
            elif "embedding_sum" not in name:
                p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
        for module in decoder.modules():
            if isinstance(module, torch.nn.ConvTranspose1d):
                fan_in = module.in_channels * module.kernel_size[0] / module.stride[0]
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / fan_in**0.5)
        for name, module in decoder.named_modules():
            if name.endswith("conv2.conv"):
                module.weight.mul_(0.3)
        decoder.decoder[-1].conv.weight.mul_(0.1)


def write_tiny_checkpoint(
    out_dir, kind: str, *, seed: int = 0, model_size: str = "1b7", text_tokenizer: str = "bytes"
) -> pathlib.Path:
    """Write a complete tiny random Qwen3-TTS model directory for `kind` and return its path.

    text_tokenizer: "bytes", the byte-level tokenizer (tiny_tokenizer.py), or "bpe", a trained BPE with
    Qwen2's pipeline (bpe_tokenizer.py; its merges make text tokens as a real vocabulary does)."""
    from qwen_tts.core.models.configuration_qwen3_tts import Qwen3TTSConfig
    from qwen_tts.core.models.modeling_qwen3_tts import Qwen3TTSForConditionalGeneration
    from safetensors.torch import save_file

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if model_size not in TALKER_HIDDEN:
        raise ValueError(f"model_size must be one of {tuple(TALKER_HIDDEN)}, got {model_size!r}")
    if text_tokenizer not in TEXT_TOKENIZERS:
        raise ValueError(f"text_tokenizer must be one of {TEXT_TOKENIZERS}, got {text_tokenizer!r}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)

    if text_tokenizer == "bpe":
        from .bpe_tokenizer import write_bpe_text_tokenizer

        text_vocab_size, text_token_config = write_bpe_text_tokenizer(out)
    else:
        write_text_tokenizer(out)
        text_vocab_size, text_token_config = TEXT_VOCAB_SIZE, TEXT_TOKEN_CONFIG
    config = tiny_config_dict(kind, model_size, text_vocab_size, text_token_config)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2), encoding="utf-8")
    model = Qwen3TTSForConditionalGeneration(Qwen3TTSConfig(**config))
    _random_init_(model, generator)
    with torch.no_grad():  # a stronger EOS row: some texts end by EOS after tens of frames (greedy too)
        model.talker.codec_head.weight[CODEC_IDS["codec_eos_token_id"]] *= EOS_ROW_SCALE
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    write_speech_tokenizer(out / "speech_tokenizer", size="tiny", seed=seed + 1)
    return out
