"""Building and loading the fused frame's CUDA C++ kernels (csrc/) with the machine's own nvcc.

Built by torch's extension tooling (`torch.utils.cpp_extension.load`, which needs nvcc and ninja) once per GPU
architecture and source version into a persistent directory,
$QWEN3_TTS_ROS_HOME/cuda_kernels/sm_<arch>-<hash of the sources, torch and CUDA versions>; later starts import
the built library from there without nvcc. Never a download. Prebuild (e.g. at `colcon build`, or on a robot
before its first start): `python -m qwen3_tts_ros.engine.frame.fused_cuda --build [--arch 8.7]`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pathlib
import platform
import shutil
import time

import torch

from ...home import home_dir

log = logging.getLogger(__name__)

CSRC = pathlib.Path(__file__).resolve().parent / "csrc"
SOURCES = ("binding.cpp", "kernels.cu")
HEADERS = ("kernels.cuh", "launchers.h")
MIN_CAPABILITY = (8, 0)  # bf16 arithmetic and the kernels' shuffles: Ampere (sm_80/86/87) and newer

_loaded: dict[str, object] = {}


def arch_of(device: torch.device) -> str:
    """'87' for an Orin, '90' for an H100."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


def source_hash() -> str:
    """Hash of the kernel sources and of what the binary depends on (torch's ABI, its CUDA version)."""
    digest = hashlib.sha256()
    for name in SOURCES + HEADERS:
        digest.update(name.encode())
        digest.update((CSRC / name).read_bytes())
    digest.update(f"torch {torch.__version__} cuda {torch.version.cuda}".encode())
    return digest.hexdigest()[:12]


def module_name(arch: str) -> str:
    return f"qwen3_tts_ros_fused_sm{arch}_{source_hash()}"


def build_dir(arch: str) -> pathlib.Path:
    return home_dir() / "cuda_kernels" / f"sm_{arch}-{source_hash()}"


def built_library(arch: str) -> pathlib.Path | None:
    """The built extension for `arch`, if it is there."""
    path = build_dir(arch) / f"{module_name(arch)}.so"
    return path if path.is_file() else None


def nvcc() -> str | None:
    """The nvcc that torch's extension tooling would use (CUDA_HOME / CUDA_PATH, else PATH)."""
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME:
        path = os.path.join(CUDA_HOME, "bin", "nvcc")
        if os.path.isfile(path):
            return path
    return shutil.which("nvcc")


def missing_build_tools() -> str | None:
    """None when the kernels can be built here; else what to install."""
    if torch.version.cuda is None:
        return "this torch has no CUDA"
    if nvcc() is None:
        return (
            "no nvcc: install the CUDA compiler that matches torch's CUDA "
            f"{torch.version.cuda} (JetPack ships it in /usr/local/cuda: export CUDA_HOME=/usr/local/cuda; "
            "elsewhere the CUDA toolkit or `pip install nvidia-cuda-nvcc`)"
        )
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        return "no ninja (torch's extension builder needs it): pip install ninja"
    return None


def _estimate_seconds() -> int:
    return 240 if platform.machine() == "aarch64" else 60  # a Jetson's cores are slower


def build(arch: str) -> pathlib.Path:
    """Compile the kernels for sm_<arch> into build_dir(arch) (ninja: nothing to do when up to date)."""
    from torch.utils.cpp_extension import load

    why_not = missing_build_tools()
    if why_not is not None:
        raise RuntimeError(f"cannot build the fused CUDA kernels: {why_not}")
    directory = build_dir(arch)
    directory.mkdir(parents=True, exist_ok=True)
    log.warning(
        "building CUDA kernels for sm_%s, about %d s, once (into %s)", arch, _estimate_seconds(), directory
    )
    start = time.monotonic()
    # torch reads the target architectures from this variable; exactly the one asked for, then put back.
    saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = f"{arch[:-1]}.{arch[-1]}"
    try:
        module = load(
            name=module_name(arch),
            sources=[str(CSRC / name) for name in SOURCES],
            extra_cflags=["-O3", "-std=c++17"],
            extra_cuda_cflags=["-O3", "-std=c++17"],
            extra_include_paths=[str(CSRC)],
            build_directory=str(directory),
            verbose=False,
        )
    finally:
        if saved is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = saved
    _loaded[arch] = module
    log.warning("built the CUDA kernels for sm_%s in %.0f s", arch, time.monotonic() - start)
    return directory


def kernels(device: torch.device):
    """The kernel module for `device`'s architecture: imported from the cache, else built first (logged)."""
    arch = arch_of(device)
    if arch in _loaded:
        return _loaded[arch]
    path = built_library(arch)
    if path is None:
        build(arch)
        return _loaded[arch]
    spec = importlib.util.spec_from_file_location(module_name(arch), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _loaded[arch] = module
    return module
