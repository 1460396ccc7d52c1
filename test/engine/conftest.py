"""Shared engine-test fixtures: tiny random Qwen3-TTS checkpoints (one per model kind) and loaded models.

Session-scoped: each checkpoint is written once and loaded once (float32, CPU) through qwen-tts's real
loader. Tests must not modify the loaded models.
"""

import pytest
import torch

from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint


def _load(path, dtype=torch.float32, device="cpu"):
    # qwen-tts's own from_pretrained, plus the rotary-frequency repair every engine load does (a no-op under
    # transformers 4.57; see loading.restore_rotary_frequencies), so the reference is a correct model under
    # qwen-tts-compat / transformers 5 too.
    from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts

    return load_qwen_tts(path, device=device, dtype=dtype)


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_base"), "base", seed=0)


@pytest.fixture(scope="session")
def tiny_custom_voice_dir(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_custom_voice"), "custom_voice", seed=1)


@pytest.fixture(scope="session")
def tiny_voice_design_dir(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_voice_design"), "voice_design", seed=2)


@pytest.fixture(scope="session")
def tiny_custom_voice_bpe_dir(tmp_path_factory):
    """custom_voice with a trained BPE text tokenizer (checkpoints/bpe_tokenizer.py): text tokens that
    merge as a real vocabulary's do (incremental text, issue 13)."""
    return write_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny_custom_voice_bpe"), "custom_voice", seed=3, text_tokenizer="bpe"
    )


@pytest.fixture(scope="session")
def tiny_base_tts(tiny_base_dir):
    return _load(tiny_base_dir)


@pytest.fixture(scope="session")
def tiny_custom_voice_tts(tiny_custom_voice_dir):
    return _load(tiny_custom_voice_dir)


@pytest.fixture(scope="session")
def tiny_voice_design_tts(tiny_voice_design_dir):
    return _load(tiny_voice_design_dir)


@pytest.fixture(scope="session")
def tiny_custom_voice_bpe_tts(tiny_custom_voice_bpe_dir):
    return _load(tiny_custom_voice_bpe_dir)


# The same checkpoints in float64: tests that compare two decodes of the same codes (streamed vs whole) run
# on these, so the comparison shows exactness, not float32 rounding (waveform_bounds.py, rule 1).
@pytest.fixture(scope="session")
def tiny_base_tts_f64(tiny_base_dir):
    return _load(tiny_base_dir, torch.float64)


@pytest.fixture(scope="session")
def tiny_custom_voice_tts_f64(tiny_custom_voice_dir):
    return _load(tiny_custom_voice_dir, torch.float64)


@pytest.fixture(scope="session")
def tiny_voice_design_tts_f64(tiny_voice_design_dir):
    return _load(tiny_voice_design_dir, torch.float64)


@pytest.fixture(scope="module")
def cuda_custom_voice_tts_f64(tiny_custom_voice_dir):
    """The float64 custom-voice checkpoint on CUDA, per gpu test module (freed after it)."""
    tts = _load(tiny_custom_voice_dir, torch.float64, device="cuda")
    yield tts
    del tts
    torch.cuda.empty_cache()


@pytest.fixture(scope="session")
def tiny_tts_by_kind(tiny_base_tts, tiny_custom_voice_tts, tiny_voice_design_tts):
    return {
        "base": tiny_base_tts,
        "custom_voice": tiny_custom_voice_tts,
        "voice_design": tiny_voice_design_tts,
    }


@pytest.fixture(scope="session")
def reference_audio():
    """One second of deterministic noise-like audio at 24 kHz, as (np.ndarray float32, sr)."""
    import numpy as np

    t = np.arange(24000, dtype=np.float32) / 24000
    rng = np.random.RandomState(0)
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.randn(24000).astype(np.float32)
    return wav.astype(np.float32), 24000


@pytest.fixture
def no_tf32():
    """float32 matmuls and convolutions without TF32 (cuDNN uses TF32 by default): comparisons of two
    float32 CUDA computations then measure float32 rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def torch_single_thread():
    """One torch thread for a module: the tiny models run several times faster single-threaded on a
    busy 2-core machine (thread oversubscription). Use with `pytest.mark.usefixtures`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
