"""Every fused-frame kernel compiles for the Jetson Orin (sm_87) and the other targets, and fits them, without
a GPU (issue 22): bench/orin_compile.py, in a child process (its compile workers and the Triton settings it
changes stay out of the test session).

The launches compiled are the frame's own (recorded from a full-size meta-device frame), so a launch shape
changed in fused_triton.py is checked here without any list to update. A kernel launched outside
fused_triton._launch would not be recorded but would try to run on "meta" and fail the recording."""

import json
import os
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton")
if int(triton.__version__.split(".")[0]) < 3:
    pytest.skip("the fused kernels need Triton >= 3", allow_module_level=True)
if not hasattr(triton, "knobs"):  # bench/orin_compile.py reads ptxas's log through them
    pytest.skip("the compile check needs a Triton with triton.knobs (CI runs 3.6)", allow_module_level=True)

from bench.orin_compile import SIZES, TARGETS, Compiled  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("orin") / "compiled.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRITON_")}  # no interpreter, no cache
    proc = subprocess.run(
        [sys.executable, "-m", "bench.orin_compile", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    print(proc.stdout)  # the table (pytest -s shows it; a failure shows it in the captured output)
    assert out.exists(), proc.stderr[-4000:]
    return [Compiled(**row) for row in json.loads(out.read_text())]


def test_orin_every_fused_kernel_is_compiled_at_both_sizes_for_every_target(compiled):
    from qwen3_tts_ros.engine.frame import triton_kernels

    entry_points = {  # triton_kernels.py names its launched kernels *_kernel, its inlined helpers otherwise
        name for name, fn in vars(triton_kernels).items()
        if isinstance(fn, triton.runtime.JITFunction) and name.endswith("_kernel")
    }  # fmt: skip
    for cc in TARGETS:
        for size in SIZES:
            got = {r.kernel for r in compiled if r.target == cc and size in r.where}
            assert got == entry_points, (cc, size, got, entry_points)
    # the talker's split attention and the code predictor's single-split one, on one and two rows
    attention = {r.constexprs.split(" (")[0] for r in compiled if r.kernel == "_attention_kernel"}
    assert any("SPLITS=16" in a for a in attention) and any("SPLITS=1 " in a for a in attention), attention
    assert any("S=2" in a for a in attention) and any("S=1" in a for a in attention), attention


def test_orin_every_fused_kernel_fits_its_target_and_spills_nothing(compiled):
    """Registers per thread and per block, shared memory per block (orin_compile.LIMITS, from the CUDA
    programming guide), no spills; sm_87 is the robot, the others the desktop and data-centre GPUs."""
    problems = {f"sm_{r.target} {r.kernel} {r.where} ({r.constexprs})": r.problems() for r in compiled}
    assert not {k: v for k, v in problems.items() if v}
    assert all(r.registers > 0 for r in compiled)  # ptxas's log was read for every compilation
