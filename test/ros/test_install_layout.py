"""`colcon build` of this package installs what `ros2 launch qwen3_tts_ros tts.launch.py` needs.

The build is the one scripts/setup_env.sh made from this tree (its cache key covers every input file).
"""
import os
import pathlib
import subprocess

import pytest

WS = os.environ.get("QWEN3_TTS_ROS_WS")
pytestmark = pytest.mark.skipif(not WS, reason="run through scripts/test.sh (needs the colcon workspace)")


def _prefix():
    return pathlib.Path(WS) / "qwen3_tts_ros"


def test_executable_launch_and_config_installed():
    prefix = _prefix()
    exe = prefix / "lib" / "qwen3_tts_ros" / "tts_node"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert (prefix / "share" / "qwen3_tts_ros" / "launch" / "tts.launch.py").is_file()
    assert (prefix / "share" / "qwen3_tts_ros" / "config" / "tts.yaml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "qwen3_tts_ros").is_file()
    assert (prefix / "share" / "qwen3_tts_ros" / "LICENSE").read_text().split()[:3] == ["Apache", "License",
                                                                                       "Version"]


def test_cli_installed_on_path_and_for_ros2_run():
    prefix = _prefix()
    for name in ("qwen3-tts-say", "tts_node"):  # on PATH through bin/, and where `ros2 run` looks
        for exe in (prefix / "bin" / name, prefix / "lib" / "qwen3_tts_ros" / name):
            assert exe.is_file() and os.access(exe, os.X_OK), exe
    # ament's environment hook puts the package's bin/ on PATH when the workspace is sourced.
    hook = (prefix / "share" / "qwen3_tts_ros" / "environment" / "path.dsv").read_text()
    assert "PATH;bin" in hook
    proc = subprocess.run([str(prefix / "bin" / "qwen3-tts-say"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "usage: qwen3-tts-say" in proc.stdout, proc.stderr


def test_python_package_and_messages_installed_together():
    site = next((_prefix() / "lib").glob("python3*/site-packages/qwen3_tts_ros"))
    assert (site / "msg" / "_audio_chunk.py").is_file()
    assert (site / "msg" / "_utterance_latency.py").is_file()
    assert (site / "engine" / "types.py").is_file()
    assert (site / "node").is_dir()
    assert not (site / "testing").exists(), "test helpers are not shipped to a robot"
    # Ours overlays rosidl's empty __init__.py, so `from qwen3_tts_ros import Qwen3TTSCudaGraphs` works there.
    assert "Qwen3TTSCudaGraphs" in (site / "__init__.py").read_text()


def test_interface_definitions_match_ros_drivers_audio_common_msgs():
    # The test-only copy must keep the exact ros-drivers definitions (fields and types).
    from audio_common_msgs.msg import AudioData, AudioInfo

    assert AudioData.get_fields_and_field_types() == {"data": "sequence<uint8>"}
    assert AudioInfo.get_fields_and_field_types() == {
        "channels": "uint8", "sample_rate": "uint32", "sample_format": "string", "bitrate": "uint32",
        "coding_format": "string"}
