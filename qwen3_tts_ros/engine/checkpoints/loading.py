"""Loading a Qwen3-TTS checkpoint through qwen-tts, offline unless downloads are explicitly allowed.

A local directory is checked for the files qwen-tts needs (so a missing file is named, not buried in a
transformers traceback) and loaded as is: local directories never touch the network. A hub id is
resolved to its snapshot in the local Hugging Face cache (`local_files_only`); only with
allow_download=True is it fetched from the hub first.
"""

from __future__ import annotations

import os
import pathlib

import torch

# What qwen-tts 0.1.1's `Qwen3TTSModel.from_pretrained` reads from a model directory.
REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "speech_tokenizer/config.json",
    "speech_tokenizer/preprocessor_config.json",
)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
SPEECH_TOKENIZER_WEIGHT_FILES = ("speech_tokenizer/model.safetensors", "speech_tokenizer/pytorch_model.bin")
TEXT_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))


DTYPE_NAMES = ("bfloat16", "float16", "float32")


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """User settings -> (device, dtype name) to load with, as the node and the CLI both choose them.

    device: "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N"; dtype: "auto" (bfloat16 on
    CUDA, float32 on CPU) or one of DTYPE_NAMES. ValueError names what is wrong (an unknown name, or a
    CUDA device on a machine without CUDA).
    """
    check_device_name(device)
    check_dtype_name(dtype)
    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def check_device_name(device) -> None:
    """ValueError unless `device` is "auto", "cpu", "cuda" or "cuda:N" (whether it exists is not checked)."""
    device = str(device)
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def check_dtype_name(dtype) -> None:
    if dtype != "auto" and dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype must be 'auto' or one of {DTYPE_NAMES}, got {dtype!r}")


def check_model_dir(path) -> pathlib.Path:
    """Raise FileNotFoundError naming the first file a Qwen3-TTS model directory lacks."""
    root = pathlib.Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            raise FileNotFoundError(f"model directory {root} is missing {name}")
    for names in (WEIGHT_FILES, SPEECH_TOKENIZER_WEIGHT_FILES):
        if not any((root / name).is_file() for name in names):
            raise FileNotFoundError(f"model directory {root} is missing weights: none of {', '.join(names)}")
    if not any(all((root / name).is_file() for name in group) for group in TEXT_TOKENIZER_FILES):
        raise FileNotFoundError(
            f"model directory {root} is missing the text tokenizer: vocab.json + merges.txt or tokenizer.json"
        )
    return root


def resolve_model_dir(
    model_name, *, allow_download: bool = False, cache_dir=None, revision=None
) -> pathlib.Path:
    """Local directory for `model_name` (a directory, or a hub id such as "Qwen/Qwen3-TTS-12Hz-0.6B-Base")."""
    path = os.path.expanduser(os.fspath(model_name))
    if os.path.isdir(path):
        return check_model_dir(path)
    if path.startswith(("/", ".", "~")) or path.count("/") > 1:  # a path, not an "org/name" hub id
        raise FileNotFoundError(f"model directory not found: {model_name}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(
            path, cache_dir=cache_dir, revision=revision, local_files_only=not allow_download
        )
    except HFValidationError as exc:
        raise FileNotFoundError(f"model directory not found and not a valid hub id: {model_name}") from exc
    except LocalEntryNotFoundError as exc:
        raise FileNotFoundError(
            f"model {model_name!r} is not a local directory and not in the Hugging Face cache; "
            "pass allow_download=True to download it (or give a local model directory)"
        ) from exc
    return check_model_dir(snapshot)


def load_qwen_tts(
    model_name,
    *,
    device: str | torch.device = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    allow_download: bool = False,
    cache_dir=None,
    revision=None,
    **kwargs,
):
    """Load `qwen_tts.Qwen3TTSModel` from a local directory or hub id (see module doc for network rules).

    kwargs are forwarded to `Qwen3TTSModel.from_pretrained` (e.g. attn_implementation).
    """
    model_dir = resolve_model_dir(  # first: a missing model is reported without the slow qwen-tts import
        model_name, allow_download=allow_download, cache_dir=cache_dir, revision=revision
    )
    from qwen_tts import Qwen3TTSModel

    device = str(device)
    if isinstance(dtype, str):  # "bfloat16", "float16", "float32"
        dtype = getattr(torch, dtype)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    tts = Qwen3TTSModel.from_pretrained(
        str(model_dir), device_map=device, dtype=dtype, local_files_only=True, **kwargs
    )
    restore_rotary_frequencies(tts.model, tts.model.speech_tokenizer.model)
    return tts


@torch.no_grad()
def restore_rotary_frequencies(*roots: torch.nn.Module) -> int:
    """Recompute the `inv_freq` buffer of every qwen-tts rotary embedding under `roots` with the module's
    own `rope_init_fn`, as its constructor does; returns how many buffers held other values.

    `inv_freq` is a non-persistent buffer, so no checkpoint holds it. transformers 5 `from_pretrained` builds
    the model on the meta device and materialises such buffers UNINITIALISED: with qwen-tts-compat 0.1.1.post1
    on transformers 5.17 the talker's, the code predictor's and the codec decoder's frequencies held garbage
    after loading (qwen-tts-compat repairs them lazily, and only when they are all zero), and the engine,
    which builds its RoPE tables from these buffers, would use whatever they held. Under transformers 4.57
    the buffers already hold these values (0 changed). transformers' own modules (the Mimi encoder) are left
    to transformers, which initialises them.
    """
    changed = 0
    for root in roots:
        for module in root.modules():
            init = getattr(module, "rope_init_fn", None)
            buffer = getattr(module, "inv_freq", None)
            if not (type(module).__module__.startswith("qwen_tts.") and callable(init)):
                continue
            if not isinstance(buffer, torch.Tensor):
                continue
            inv_freq, module.attention_scaling = init(module.config, buffer.device)
            inv_freq = inv_freq.to(buffer.dtype)
            if not torch.equal(buffer, inv_freq):
                buffer.copy_(inv_freq)
                changed += 1
            if hasattr(module, "original_inv_freq"):
                module.original_inv_freq = buffer
    return changed
