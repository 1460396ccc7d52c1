"""The node's parameter values (a plain name -> value dict, as params.read_all or config/tts.yaml's
ros__parameters give them) -> the worker's configurations. No ROS import, so bench/ drives the worker with
exactly the node's settings on a machine without ROS (bench/endurance_node_defaults.py).
"""
from __future__ import annotations

import math
from typing import Any

from qwen3_tts_ros.engine.config import EngineConfig
from qwen3_tts_ros.node.worker_types import LoadConfig, UtteranceSettings

# A sampling.* number left at these takes the model's default (generation_config.json, then qwen-tts's).
MODEL_DEFAULT_FLOAT = float("nan")
MODEL_DEFAULT_INT = -1
SAMPLING_PREFIX = "sampling."


def is_model_default(value: Any) -> bool:
    """A sampling parameter's "take the model's default" value: .nan for a float, -1 for an integer. Each
    type has only its own sentinel: a float -1.0 is a value like any other (refused by the sampling rules,
    as the CLI and the library refuse it)."""
    if isinstance(value, float):
        return math.isnan(value)
    return type(value) is int and value == MODEL_DEFAULT_INT


def sampling_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The sampling.* parameters as SamplingParams.merged's explicit settings (None: the model's default)."""
    return {
        name[len(SAMPLING_PREFIX) :]: None if is_model_default(value) else value
        for name, value in values.items()
        if name.startswith(SAMPLING_PREFIX)
    }


# Load-time parameters that are EngineConfig fields of the same name (prefill_buckets is one too, with [0];
# runaway.* are runaway_*, with 0.0 for off).
ENGINE_PARAMETERS = (
    "model", "device", "dtype", "max_seq_len", "use_cuda_graphs", "frame_path",
    "allow_download",
)  # fmt: skip


def engine_config(values: dict[str, Any]) -> EngineConfig:
    """The load-time parameters of the engine as its EngineConfig (ValueError naming a setting it refuses)."""
    buckets = tuple(b for b in values["prefill_buckets"] if b != 0)  # [0]: none (ROS has no empty int array)
    return EngineConfig(
        prefill_buckets=buckets,
        runaway_frames_per_token=values["runaway.frames_per_token"] or None,  # 0.0: off
        runaway_min_frames=values["runaway.min_frames"],
        **{name: values[name] for name in ENGINE_PARAMETERS},
    )


def utterance_settings(values: dict[str, Any]) -> UtteranceSettings:
    """The per-utterance settings, snapshotted when a text arrives."""
    return UtteranceSettings(
        sampling=sampling_overrides(values),
        first_chunk_frames=values["streaming.first_chunk_frames"],
        chunk_frames=values["streaming.chunk_frames"],
    )


def load_config(values: dict[str, Any]) -> LoadConfig:
    """What configure loads (ValueError naming a setting the engine refuses)."""
    return LoadConfig(
        engine=engine_config(values),
        mode=values["voice.mode"],
        language=values["voice.language"],
        speaker=values["voice.speaker"],
        instruct=values["voice.instruct"],
        ref_audio=values["voice.ref_audio"],
        ref_text=values["voice.ref_text"],
        x_vector_only=values["voice.x_vector_only"],
        pcm_format=values["output.format"],
        sample_rate=values["output.sample_rate"],
        gain=values["output.gain"],
        warmup_text=values["warmup.text"],
        warmup_settings=utterance_settings(values),
        voices_file=values["voices.file"],
    )
