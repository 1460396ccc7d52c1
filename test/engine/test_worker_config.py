"""The node's parameter values -> the worker's LoadConfig / UtteranceSettings (node/settings.py), which the
node and bench/endurance_node_defaults.py both use."""

import dataclasses
import pathlib

import yaml

from qwen3_tts_ros.node.settings import load_config, utterance_settings
from qwen3_tts_ros.node.worker_types import LoadConfig, UtteranceSettings

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "config" / "tts.yaml"


def _yaml_values() -> dict:
    return dict(yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"])


def test_every_voice_and_output_field_comes_from_its_own_parameter():
    values = _yaml_values()
    marked = dict(values)
    fields = [f.name for f in dataclasses.fields(LoadConfig) if f.name not in ("engine", "warmup_settings")]
    marks = {name: f"marker {i}" for i, name in enumerate(values) if not name.startswith(("sampling.",
                                                                                          "streaming."))}
    engine_parameters = ("model", "device", "dtype", "max_seq_len", "use_cuda_graphs", "frame_path",
                         "prefill_buckets", "allow_download", "runaway.frames_per_token",
                         "runaway.min_frames")
    marked.update({k: v for k, v in marks.items() if k not in engine_parameters})
    got = load_config(marked)
    source = {field: [n for n, v in marked.items() if v == getattr(got, field)] for field in fields}
    assert all(len(names) == 1 for names in source.values()), source
    assert {field: names[0] for field, names in source.items() if not names[0].endswith(field)} == {
        "pcm_format": "output.format",
        "warmup_text": "warmup.text",
        "voices_file": "voices.file",
    }
    engine = load_config(values).engine
    assert engine.prefill_buckets == tuple(values["prefill_buckets"])
    assert (engine.model, engine.max_seq_len) == (values["model"], values["max_seq_len"])
    assert engine.frame_path == values["frame_path"] == "auto"  # the fastest path that runs (config/tts.yaml)


def test_runaway_guard_parameters_reach_the_engine_config():
    values = _yaml_values()
    assert (values["runaway.frames_per_token"], values["runaway.min_frames"]) == (8.0, 50)  # on by default
    engine = load_config(values).engine
    assert (engine.runaway_frames_per_token, engine.runaway_min_frames) == (8.0, 50)
    assert engine.runaway().max_frames(10) == 80
    values.update({"runaway.frames_per_token": 0.0, "runaway.min_frames": 7})
    engine = load_config(values).engine
    assert engine.runaway_frames_per_token is None and engine.runaway() is None  # 0.0: off


def test_utterance_settings_take_sampling_and_streaming_parameters():
    values = _yaml_values()
    values.update({"sampling.max_new_tokens": 17, "sampling.temperature": 0.5, "streaming.chunk_frames": 3})
    settings = utterance_settings(values)
    assert isinstance(settings, UtteranceSettings)
    assert (settings.sampling["max_new_tokens"], settings.sampling["temperature"]) == (17, 0.5)
    assert settings.sampling["top_k"] is None  # left at -1 in tts.yaml: the model's default
    assert (settings.first_chunk_frames, settings.chunk_frames) == (values["streaming.first_chunk_frames"], 3)
    assert load_config(values).warmup_settings == settings
