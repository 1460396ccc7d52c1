"""bench/gpu_parity.py: greedy codes of our FrameGenerator vs qwen-tts's talker.generate.

The CPU test runs the script's logic on tiny widths; the gpu test runs the float32 parity on a full-size
(released-config) random 0.6B model with CUDA graphs on.
"""

import importlib.util
import json
import pathlib

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu_parity.py"


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_parity", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parity_logic_on_cpu_tiny(tmp_path):
    bench = _bench()
    out = tmp_path / "parity.json"
    assert (
        bench.main(
            [
                "--device",
                "cpu",
                "--tiny",
                "--sizes",
                "1b7",
                "--frames",
                "12",
                "--prompt-len",
                "40",
                "--dtypes",
                "float32",
                "--paths",
                "reference",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())[0]["float32"]["reference"]
    assert res["identical"] and res["frames_ours"] == res["frames_qwen_tts"] == 12


@pytest.mark.gpu
def test_float32_parity_full_size_cuda():
    res = _bench().run_parity(
        "0b6", tiny=False, device="cuda", frames=40, prompt_len=60, dtypes=("float32",),
        paths=("reference", "fused"),
    )  # fmt: skip
    for path in ("reference", "fused"):
        entry = res["float32"][path]
        assert entry["graphs_equal_eager"], (path, entry)
        assert entry["identical"], (path, entry)
