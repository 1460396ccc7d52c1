"""The node's parameter values -> the worker's LoadConfig / UtteranceSettings (worker.load_config,
worker.utterance_settings), which the node and bench/endurance_node_defaults.py both use."""

import dataclasses
import pathlib

import yaml

from qwen3_tts_ros.node.worker import LoadConfig, UtteranceSettings, load_config, utterance_settings

CONFIG = pathlib.Path(__file__).resolve().parents[2] / "config" / "tts.yaml"


def _yaml_values() -> dict:
    return dict(yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"])


def test_every_load_time_field_comes_from_its_own_parameter():
    values = _yaml_values()
    # Each parameter a value of its own (sampling and streaming keep theirs: UtteranceSettings checks them).
    marked = {name: f"marker {i}" for i, name in enumerate(values)}
    marked.update({name: v for name, v in values.items() if name.startswith(("sampling.", "streaming."))})
    marked["prefill_buckets"] = [7]
    got = load_config(marked)
    source = {}
    for field in dataclasses.fields(LoadConfig):
        if field.name != "warmup_settings":
            value = getattr(got, field.name)
            source[field.name] = [n for n, v in marked.items() if v == value or v == list(value or ())]
    assert all(len(names) == 1 for names in source.values()), source
    assert {field: names[0] for field, names in source.items() if not names[0].endswith(field)} == {
        "pcm_format": "output.format",
        "warmup_text": "warmup.text",
    }
    assert load_config(values).prefill_buckets == tuple(values["prefill_buckets"])


def test_utterance_settings_take_sampling_and_streaming_parameters():
    values = _yaml_values()
    values.update({"sampling.max_new_tokens": 17, "sampling.temperature": 0.5, "streaming.chunk_frames": 3})
    settings = utterance_settings(values)
    assert isinstance(settings, UtteranceSettings)
    assert (settings.sampling.max_new_tokens, settings.sampling.temperature) == (17, 0.5)
    assert (settings.first_chunk_frames, settings.chunk_frames) == (values["streaming.first_chunk_frames"], 3)
    assert load_config(values).warmup_settings == settings
