"""The fused Triton frame (fused_triton.py) gives the reference frame's codes and choices, on CPU under
Triton's interpreter (fused_interpreted.py, in a child process)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from qwen3_tts_ros.engine.errors import EngineConfigError
from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions

triton = pytest.importorskip("triton")
if int(triton.__version__.split(".")[0]) < 3:
    pytest.skip("the fused kernels need Triton >= 3", allow_module_level=True)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def interpreted():
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "fused_interpreted.py")],
        env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_greedy_codes_equal_the_reference_frame(interpreted):
    """Integer codes, so no tolerance: the fused kernels sum in another order than the reference's
    kernels, which may move a logit by a few float32 ulps, never enough to change an argmax here (checked
    per run: a tie within that distance would show as a failure here, not pass silently)."""
    for run in interpreted["greedy"]:
        assert run["fused"] == run["reference"], run
        assert len(run["fused"]) >= 2
    assert any(run["talker_splits"] > 1 and run["prompt_len"] > 32 for run in interpreted["greedy"])


def test_sampler_kernel_chooses_what_choose_token_chooses(interpreted):
    cases = interpreted["sampler"]
    mismatches = [c for c in cases if c["got"] != c["expected"]]
    assert not mismatches, mismatches
    assert any(c["params"]["do_sample"] for c in cases) and any(not c["params"]["do_sample"] for c in cases)
    assert any(c["params"]["top_p"] < 1.0 and c["params"]["do_sample"] for c in cases)
    for c in cases:
        if c["talker"]:
            assert c["seen_marked"] and c["generated_counted"], c


def test_forced_logits_of_the_fused_frame_equal_qwen_tts_in_float64(interpreted):
    """Teacher forcing (bench/teacher_forced.py) through the fused frame: every step's logits are
    qwen-tts's float64 ones up to float32 roundings. A float64 model still computes each RMSNorm in float32
    (qwen-tts does, and so do the reference path and the kernels), and the kernels evaluate its sum and
    rsqrt their own way: each of the ~10 float32 stages on a logit's path here (4 norms per layer in 2
    layers, the final norm, the float32 logits) may move it by about one float32 ulp relative
    (|logit| * 2**-24), and these small random layers do not amplify that much: 16 ulps (2**-20) of the
    largest logit bound it. A real mistake moves logits by ~0.1 at the tiny widths."""
    res = interpreted["teacher_forced"]
    for part, choices in (("talker", 3), ("code_predictor", 45)):
        got = res["float64"]["fused"][part]
        assert got["choices"] == choices
        assert got["max"] <= res["reference_logits_max_abs"][part] * 2.0**-20 + 1e-12, res


def test_fused_needs_triton_on_the_device(tiny_custom_voice_tts):
    """Asked for explicitly where it cannot run (CPU without the interpreter): a clear error, not a
    silent fallback; "auto" (the default) picks the eager reference frame there."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this process runs the interpreter")
    model = tiny_custom_voice_tts.model
    refused = r"^frame path 'fused-triton' cannot run on cpu: "
    refused += r"needs CUDA with Triton >= 3 .*, and the device is cpu$"
    with pytest.raises(EngineConfigError, match=refused):
        FrameGenerator(model, FrameOptions(max_seq_len=64, path="fused-triton"))
    generator = FrameGenerator(model, FrameOptions(max_seq_len=64))
    assert (generator.path.name, generator.device) == ("eager", torch.device("cpu"))
