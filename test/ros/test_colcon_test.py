"""`colcon build && colcon test` in a workspace runs this package's suites (before: 0 tests, no BUILD_TESTING
block). A copy of the package is built with tests in a temporary workspace on top of the set-up's one (for
audio_common_msgs), the suites are listed, and the engine and ROS suites run through `colcon test` with a
small -k subset (CMake's QWEN3_TTS_ROS_PYTEST_ADDOPTS), to keep CI time low: the whole suites are what
scripts/test.sh runs anyway.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

REPO = pathlib.Path(__file__).resolve().parents[2]
WS = os.environ.get("QWEN3_TTS_ROS_WS")
pytestmark = pytest.mark.skipif(not WS, reason="run through scripts/test.sh (needs the colcon workspace)")
# What the package is built and tested from (scripts/setup_env.sh's list, plus the tests).
SOURCES = ("CMakeLists.txt", "package.xml", "setup.py", "LICENSE", "resource", "msg", "srv", "action",
           "launch", "config", "scripts", "qwen3_tts_ros", "test", "bench", "pytest.ini")  # fmt: skip
SUBSET = "test_text_split or test_install_layout"


def colcon(ws: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    # Without this checkout on PYTHONPATH: the tests import what the workspace installed.
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and pathlib.Path(p) != REPO]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return subprocess.run(["colcon", *args], cwd=ws, capture_output=True, text=True, env=env,
                          timeout=2 * EVENT_TIMEOUT_S)


def test_colcon_test_runs_the_suites(tmp_path):
    ws = tmp_path / "ws"
    src = ws / "src" / "qwen3_tts_ros"
    src.mkdir(parents=True)
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                         if (REPO / name).is_dir() else {}))
    built = colcon(ws, "build", "--packages-select", "qwen3_tts_ros", "--event-handlers", "console_direct-",
                   "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=ON",
                   f"-DQWEN3_TTS_ROS_PYTEST_ADDOPTS=-k '{SUBSET}'")
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]

    listed = subprocess.run(["ctest", "-N"], cwd=ws / "build" / "qwen3_tts_ros", capture_output=True,
                            text=True, timeout=60)
    names = re.findall(r"Test +#\d+: (\S+)", listed.stdout)
    assert names == [f"qwen3_tts_ros_{s}" for s in ("engine", "ros", "gpu", "long")], listed.stdout

    tested = colcon(ws, "test", "--packages-select", "qwen3_tts_ros", "--event-handlers", "console_direct-",
                    "--ctest-args", "-R", "qwen3_tts_ros_(engine|ros)$")
    assert tested.returncode == 0, (tested.stdout + tested.stderr)[-4000:]
    results = colcon(ws, "test-result", "--all", "--verbose")
    summary = re.search(r"Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?, (\d+) skipped",
                        results.stdout)
    assert summary, results.stdout[-4000:]
    total, errors, failures, _ = (int(g) for g in summary.groups())
    assert errors == failures == 0, results.stdout[-4000:]
    assert total >= 10, results.stdout[-4000:]  # test_text_split's cases and test_install_layout's
    for suite in ("engine", "ros"):
        results_dir = ws / "build" / "qwen3_tts_ros" / "test_results" / "qwen3_tts_ros"
        report = results_dir / f"qwen3_tts_ros_{suite}.xunit.xml"
        ran = int(re.search(r'tests="(\d+)"', report.read_text()).group(1))
        assert ran > 0, f"the {suite} suite ran no test"
