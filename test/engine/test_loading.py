"""Offline loading: local dirs checked file by file; hub ids only from the cache unless allow_download."""

import shutil
import socket

import pytest
import torch

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.checkpoints.loading import check_model_dir, resolve_model_dir


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_loads_local_dir(tiny_voice_design_dir, no_network):
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        tiny_voice_design_dir, device="cpu", dtype=torch.float32, max_seq_len=256
    )
    assert engine.tts_model_type == "voice_design"
    assert engine.sample_rate == 24000
    assert engine.dtype == torch.float32 and engine.device.type == "cpu"
    engine.close()


@pytest.mark.parametrize(
    "missing",
    [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "vocab.json",
        "speech_tokenizer/config.json",
        "speech_tokenizer/model.safetensors",
        "speech_tokenizer/preprocessor_config.json",
    ],
)
def test_missing_file_is_named(tiny_custom_voice_dir, tmp_path, missing):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_custom_voice_dir, model_dir)
    (model_dir / missing).unlink()
    if (model_dir / "tokenizer.json").exists() and missing == "vocab.json":
        (model_dir / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=missing.split("/")[-1].replace(".", r"\.")):
        Qwen3TTSCudaGraphs.from_pretrained(model_dir, device="cpu", dtype=torch.float32)


def test_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not found"):
        check_model_dir(tmp_path / "nope")


def test_hub_id_without_allow_download_does_not_touch_the_network(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="allow_download=True"):
        Qwen3TTSCudaGraphs.from_pretrained(
            "Qwen/Qwen3-TTS-12Hz-0.6B-Base", device="cpu", cache_dir=str(tmp_path / "hub_cache")
        )


def test_cuda_device_without_cuda(tiny_voice_design_dir):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Qwen3TTSCudaGraphs.from_pretrained(tiny_voice_design_dir, device="cuda")


def test_hub_id_in_the_local_cache_loads_offline(tiny_voice_design_dir, tmp_path, no_network):
    # The Hugging Face cache layout: models--<org>--<name>/refs/main -> snapshots/<commit>/<files>.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub_cache" / "models--someone--tiny-voice-design"
    shutil.copytree(tiny_voice_design_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        "someone/tiny-voice-design", device="cpu", dtype=torch.float32, cache_dir=str(tmp_path / "hub_cache")
    )
    assert engine.tts_model_type == "voice_design"
    engine.close()


def _rotary_modules(tts):
    roots = (tts.model, tts.model.speech_tokenizer.model)
    return [m for root in roots for m in root.modules()
            if type(m).__module__.startswith("qwen_tts.") and hasattr(m, "rope_init_fn")]


def test_rotary_frequencies_are_the_constructors_values_after_loading(tiny_base_dir):
    """The engine builds its RoPE tables from the loaded `inv_freq` buffers, which no checkpoint holds:
    transformers 5 leaves them uninitialised (qwen-tts-compat), so loading recomputes them."""
    import transformers
    from qwen_tts import Qwen3TTSModel

    from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts, restore_rotary_frequencies

    raw = Qwen3TTSModel.from_pretrained(str(tiny_base_dir), dtype=torch.float32, device_map="cpu")
    modules = _rotary_modules(raw)
    # talker, code predictor, codec decoder
    assert len(modules) == 3, [type(m).__name__ for m in modules]
    changed = restore_rotary_frequencies(raw.model, raw.model.speech_tokenizer.model)
    if transformers.__version__.startswith("4."):
        assert changed == 0, "transformers 4.57 loads the constructor's values; nothing to repair"
    print(f"transformers {transformers.__version__}: {changed} rotary buffer(s) repaired")
    for tts in (raw, load_qwen_tts(tiny_base_dir, device="cpu", dtype=torch.float32)):
        for module in _rotary_modules(tts):
            expected, _ = module.rope_init_fn(module.config, "cpu")
            torch.testing.assert_close(module.inv_freq, expected, rtol=0, atol=0)


def test_device_and_dtype_resolution():
    from qwen3_tts_ros.engine.checkpoints.loading import resolve_device_dtype

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device_dtype("auto", "auto") == (auto, "bfloat16" if auto == "cuda" else "float32")
    assert resolve_device_dtype("cpu", "auto") == ("cpu", "float32")
    assert resolve_device_dtype("cpu", "float16") == ("cpu", "float16")
    for device, dtype, message in (("gpu", "auto", "device must be"), ("cuda:x", "auto", "device must be"),
                                   ("cpu", "half", "dtype must be")):
        with pytest.raises(ValueError, match=message):
            resolve_device_dtype(device, dtype)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device_dtype("cuda:0", "auto")
