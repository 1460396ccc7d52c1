"""The project's per-user directory: $QWEN3_TTS_ROS_HOME, default ~/.cache/qwen3_tts_ros.

Holds what is worth keeping across runs and reboots of a robot: the demo checkpoint (demo/), the
compiled-kernel cache of torch.compile (inductor/), and the set-up scripts' virtualenvs.
"""

from __future__ import annotations

import os
import pathlib


def home_dir() -> pathlib.Path:
    default = os.path.join(os.path.expanduser("~"), ".cache", "qwen3_tts_ros")
    return pathlib.Path(os.environ.get("QWEN3_TTS_ROS_HOME") or default)


def keep_compiled_kernels() -> str:
    """Point torch inductor's on-disk cache at home_dir()/inductor unless TORCHINDUCTOR_CACHE_DIR is set.

    Why: inductor's default is /tmp/torchinductor_<user>, which a reboot empties, and then every activate of
    the node compiles again (about a minute on an H100, longer on a Jetson). `open_engine` (what the node and
    the CLI load through) calls this before the first compile; the engine's classes leave the environment
    alone.
    -> the cache directory in use."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(home_dir() / "inductor"))
