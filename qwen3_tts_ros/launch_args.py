"""The arguments of launch/tts.launch.py and what each does to the node (no ROS or launch import, so CI, which
has no `launch`, tests them). The launch file only reads the values and builds the actions from these."""

from __future__ import annotations

# Launch arguments that set one node parameter over the params file; "" (the default) leaves the file's value.
PARAMETER_ARGUMENTS = (  # (launch argument, node parameter, description)
    ("model", "model", "model directory or Hugging Face hub id ('': the params file's)"),
    ("device", "device", "torch device: auto, cpu, cuda or cuda:N ('': the params file's)"),
    ("speaker", "voice.speaker", "custom_voice speaker, e.g. Vivian ('': the params file's)"),
    ("language", "voice.language", "language of the voice, e.g. English or Auto ('': the params file's)"),
)
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


class LaunchArgumentError(ValueError):
    """A launch argument value the launch file cannot use; the message names the argument."""


def parameter_overrides(values: dict[str, str]) -> dict[str, str]:
    """The node parameters that the given launch arguments set (those left "" set nothing)."""
    return {param: values[arg] for arg, param, _ in PARAMETER_ARGUMENTS if values.get(arg, "")}


def boolean(name: str, value: str) -> bool:
    """A true/false launch argument, as launch's own conditions read one."""
    if value.strip().lower() in ("true", "1"):
        return True
    if value.strip().lower() in ("false", "0"):
        return False
    raise LaunchArgumentError(f"{name}:={value!r}: must be true or false")


def log_level_arguments(value: str) -> list[str]:
    """The node process's ROS arguments for log_level:=value."""
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise LaunchArgumentError(f"log_level:={value!r}: must be one of {', '.join(LOG_LEVELS)}")
    return ["--ros-args", "--log-level", level]


def respawn_delay(value: str) -> float:
    try:
        delay = float(value)
    except ValueError:
        delay = -1.0
    if not delay >= 0.0:
        raise LaunchArgumentError(f"respawn_delay:={value!r}: must be a number of seconds >= 0")
    return delay
