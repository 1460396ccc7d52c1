"""The fused CUDA frame's kernels (engine/frame/csrc) compile for an Orin (sm_87) and a Hopper GPU (sm_90)
without spilling, and the torch binding compiles, on a machine without a GPU (CI).

nvcc: $QWEN3_TTS_ROS_NVCC, else the PyPI CUDA compiler that scripts/setup_env.sh installs into
$QWEN3_TTS_ROS_HOME/nvcc-<torch's CUDA version>, else CUDA_HOME / PATH. No nvcc is a failure, not a skip:
these tests are what stands for the robot's own build in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
import torch

from qwen3_tts_ros.engine.frame import cuda_build
from qwen3_tts_ros.home import home_dir

ARCHS = ("87", "90")
# Registers per thread that still let one block of each kernel's launch bound run (65536 per SM).
SAMPLE_THREADS = 1024


def _nvcc() -> str:
    candidates = [os.environ.get("QWEN3_TTS_ROS_NVCC")]
    if torch.version.cuda:
        candidates += [
            str(path) for path in (home_dir() / f"nvcc-{torch.version.cuda}" / "nvidia").glob("cu*/bin/nvcc")
        ]
    candidates.append(cuda_build.nvcc())
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    pytest.fail(
        "no nvcc: scripts/setup_env.sh installs the PyPI CUDA compiler into "
        f"{home_dir()}/nvcc-{torch.version.cuda} (or set QWEN3_TTS_ROS_NVCC / CUDA_HOME)"
    )


def _short(mangled: str) -> str:
    """_ZN5q3tts11gemv_kernelI13__nv_bfloat16Li1ELb0ELi8EEEv... -> gemv_kernel<__nv_bfloat16,1,0,8>."""
    match = re.match(r"_ZN5q3tts\d+(\w+?)I(.*?)EEv", mangled)
    if not match:
        return mangled
    first = re.match(r"\d+(__nv_bfloat16|__half)|([df])", match.group(2))
    dtype = first.group(1) or {"d": "double", "f": "float"}[first.group(2)] if first else "?"
    values = re.findall(r"L[ib](\d+)E", match.group(2))
    return f"{match.group(1)}<{','.join([dtype, *values])}>"


def resource_usage(output: str) -> dict[str, dict[str, int]]:
    """ptxas --resource-usage text -> {kernel: registers, stack, spill_stores, spill_loads, smem}."""
    kernels: dict[str, dict[str, int]] = {}
    current = None
    for line in output.splitlines():
        entry = re.search(r"Function properties for (\S+)", line)
        if entry:
            current = kernels.setdefault(entry.group(1), {})
            continue
        if current is None:
            continue
        spills = re.search(
            r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line
        )
        if spills:
            current.update(stack=int(spills[1]), spill_stores=int(spills[2]), spill_loads=int(spills[3]))
        used = re.search(r"Used (\d+) registers", line)
        if used:
            current["registers"] = int(used[1])
            smem = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(smem[1]) if smem else 0
    return kernels


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_kernels_compile_without_spills(arch, tmp_path):
    nvcc = _nvcc()
    proc = subprocess.run(
        [nvcc, "-std=c++17", "-O3", "-cubin", f"-arch=sm_{arch}", "--resource-usage",
         "-I", str(cuda_build.CSRC), "-o", str(tmp_path / "kernels.cubin"),
         str(cuda_build.CSRC / "kernels.cu")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"nvcc failed for sm_{arch}:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    kernels = resource_usage(proc.stdout + proc.stderr)
    print(f"\nsm_{arch}: {len(kernels)} kernels ({nvcc})")
    print(f"{'kernel':64} {'regs':>5} {'stack':>6} {'spill st':>9} {'spill ld':>9} {'smem':>6}")
    for name, k in sorted(kernels.items(), key=lambda item: _short(item[0])):
        columns = ("registers", "stack", "spill_stores", "spill_loads", "smem")
        registers, stack, stores, loads, smem = (k.get(column, -1) for column in columns)
        print(f"{_short(name)[:64]:64} {registers:5} {stack:6} {stores:9} {loads:9} {smem:6}")
    names = {_short(name).split("<")[0] for name in kernels}
    expected = ("gemv", "attention", "combine", "sample", "frame_start", "talker_input")
    assert names >= {f"{kernel}_kernel" for kernel in expected}, names
    assert all("registers" in k and "spill_stores" in k for k in kernels.values()), kernels
    spilling = {
        _short(n): k for n, k in kernels.items() if k["spill_stores"] or k["spill_loads"] or k["stack"]
    }
    assert not spilling, f"sm_{arch}: kernels that spill or use a stack frame: {spilling}"
    # the one 1024-thread kernel must fit a block's register file
    sample = [k for n, k in kernels.items() if "sample_kernel" in n]
    assert all(k["registers"] * SAMPLE_THREADS <= 65536 for k in sample), sample


def test_nvcc_binding_compiles_against_torch(tmp_path):
    """binding.cpp (torch headers, the system C++ compiler): a syntax and type check, no GPU, no link."""
    from torch.utils.cpp_extension import include_paths

    nvcc = _nvcc()
    cuda_include = os.path.join(os.path.dirname(os.path.dirname(nvcc)), "include")
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "no C++ compiler (apt install g++)"
    includes = include_paths(device_type="cuda") if "device_type" in include_paths.__code__.co_varnames else (
        include_paths(cuda=True))  # fmt: skip
    command = [compiler, "-std=c++17", "-fsyntax-only", "-DTORCH_EXTENSION_NAME=q3tts_check",
               "-DTORCH_API_INCLUDE_EXTENSION_H", f"-I{cuda_build.CSRC}", f"-I{cuda_include}",
               f"-I{sysconfig.get_paths()['include']}"]  # fmt: skip
    command += [f"-I{path}" for path in includes]
    proc = subprocess.run(command + [str(cuda_build.CSRC / "binding.cpp")], capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-6000:]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))
