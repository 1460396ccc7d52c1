"""One rule, one message: the same invalid sampling value is refused with the same message by the library API
(SamplingParams, and the merge every generate_*/stream_* call goes through), by the node's parameters (a real
rclpy node in this process, nothing configured) and by the `qwen3-tts-say` CLI (before it loads a model)."""
import math
import os
import pathlib
import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402

from qwen3_tts_ros.engine.types import SAMPLING_RULES, SamplingParams  # noqa: E402
from qwen3_tts_ros.node import params as P  # noqa: E402
from qwen3_tts_ros.node.tts_node import TtsNode  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
# (SamplingParams field, invalid value, CLI flag, the value as typed on the command line)
INVALID = [
    ("temperature", 0.0, "--temperature", "0"),
    ("top_p", 1.5, "--top-p", "1.5"),
    ("top_k", -3, "--top-k", "-3"),
    ("max_new_tokens", 0, "--max-new-tokens", "0"),
    # -1.0 is no "model default" for a float (that is .nan; -1 is the integers' sentinel): refused as a value
    ("temperature", -1.0, "--temperature", "-1"),
    ("top_p", -1.0, "--top-p", "-1"),
]


@pytest.fixture(scope="module")
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = TtsNode(context=context)
    yield node
    node.close()
    node.destroy_node()
    rclpy.shutdown(context=context)


def library_message(field: str, value) -> str:
    with pytest.raises(ValueError) as direct:
        SamplingParams(**{field: value})
    with pytest.raises(ValueError) as merged:
        SamplingParams.merged({"temperature": 0.9}, **{field: value})
    assert str(direct.value) == str(merged.value)
    return str(direct.value)


@pytest.mark.parametrize("field,value,flag,typed", INVALID, ids=[f"{i[0]}={i[1]}" for i in INVALID])
def test_an_invalid_sampling_value_gets_one_message_everywhere(node, tmp_path, field, value, flag, typed):
    message = library_message(field, value)
    assert field in message and repr(value) in message, message

    before = node.get_parameter("sampling." + field).value
    result = node.set_parameters([Parameter("sampling." + field, value=value)])[0]
    assert not result.successful
    assert result.reason == message
    after = node.get_parameter("sampling." + field).value
    assert after == before or (math.isnan(after) and math.isnan(before)), "a refused value was applied"

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "never.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "qwen3_tts_ros.cli", "hello", flag, typed, "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"qwen3-tts-say: error: {message}", proc.stderr
    assert not out.exists()


def test_the_model_default_values_are_accepted_and_mean_none(node):
    for spec in P.SPECS:
        if spec.name.startswith(P.SAMPLING_PREFIX) and not isinstance(spec.default, bool):
            result = node.set_parameters([Parameter(spec.name, value=spec.default)])[0]
            assert result.successful, (spec.name, result.reason)
    overrides = P.sampling_overrides(P.read_all(node))
    assert set(overrides) == {f for f in SAMPLING_RULES if f != "min_new_tokens"}
    given = {name for name, value in overrides.items() if value is not None}
    assert given == {"do_sample", "subtalker_dosample"}  # booleans have no "model default" value
