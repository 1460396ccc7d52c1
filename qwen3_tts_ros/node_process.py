"""The qwen3_tts node as a real OS process (used by client.py's users: scripts/say.py and the tests)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any


def param_arg(name: str, value: Any) -> str:
    """`-p` argument text for a parameter override (values are parsed as YAML by rcl)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        text = repr(value)
    return f"{name}:={text}"


class NodeProcess:
    """The node as a real OS process: `python -m qwen3_tts_ros.node.tts_node --ros-args ...`."""

    def __init__(self, params_file: str | None = None, overrides: dict[str, Any] | None = None,
                 namespace: str = "", log_path: str | None = None, extra_ros_args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        cmd = [sys.executable, "-m", "qwen3_tts_ros.node.tts_node", "--ros-args"]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        if params_file:
            cmd += ["--params-file", params_file]
        for name, value in (overrides or {}).items():
            cmd += ["-p", param_arg(name, value)]
        cmd += extra_ros_args or []
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        # Own process group: the ROS wheels may re-execute the interpreter; signals must reach whatever runs.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})), start_new_session=True)

    def log_text(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode
