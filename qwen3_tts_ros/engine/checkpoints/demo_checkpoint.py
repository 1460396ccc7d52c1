"""The built-in tiny RANDOM demo checkpoint: what the node and `qwen3-tts-say` load when no model is given.

Its weights are random, so it produces noise, not speech; it exists so that demos and CI run the whole
pipeline without downloading weights. Written once to $QWEN3_TTS_ROS_HOME/demo (default
~/.cache/qwen3_tts_ros/demo), atomically, so concurrent first users do not see a half-written directory.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from qwen3_tts_ros.home import home_dir

DEMO_KIND = "custom_voice"


def demo_checkpoint_dir() -> pathlib.Path:
    return home_dir() / "demo" / f"tiny_random_{DEMO_KIND}"


def ensure_demo_checkpoint() -> pathlib.Path:
    """The demo checkpoint's directory, written first if it is not there yet."""
    final = demo_checkpoint_dir()
    if (final / "config.json").is_file():
        return final
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    write_tiny_checkpoint(tmp, DEMO_KIND)
    try:
        os.rename(tmp, final)
    except OSError:  # another process won the race; its copy is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return final
