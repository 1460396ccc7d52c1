"""config/tts.yaml, the node's parameter declarations and launch/tts.launch.py agree with each other.

The node is a real rclpy LifecycleNode created in this process (no model is loaded: nothing is configured).
The launch file cannot run here (no `launch` package), so it is checked as Python source.
"""
import ast
import math
import pathlib

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402

from qwen3_tts_ros.node import params as P  # noqa: E402
from qwen3_tts_ros.node.tts_node import NODE_NAME, TtsNode  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "tts.yaml"
LAUNCH = REPO / "launch" / "tts.launch.py"


def _yaml_params() -> dict:
    doc = yaml.safe_load(CONFIG.read_text())
    assert list(doc) == ["/**"], "one wildcard block, so the file applies whatever the node's name/namespace"
    return doc["/**"]["ros__parameters"]


@pytest.fixture(scope="module")
def node_from_yaml():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = TtsNode(context=context, cli_args=["--ros-args", "--params-file", str(CONFIG)])
    yield node
    node.close()
    node.destroy_node()
    rclpy.shutdown(context=context)


def test_yaml_keys_are_exactly_the_declared_parameters(node_from_yaml):
    in_yaml = set(_yaml_params())
    declared = {name for name in P.SPEC_BY_NAME}
    assert in_yaml == declared, f"only in yaml: {in_yaml - declared}; missing: {declared - in_yaml}"
    for name in declared:
        assert node_from_yaml.has_parameter(name)


def test_yaml_values_load_with_the_declared_types_and_match_the_defaults(node_from_yaml):
    # A type mismatch (e.g. `1` for a float) would already have raised when the node declared its parameters.
    for name, value in _yaml_params().items():
        got = node_from_yaml.get_parameter(name).value
        default = P.SPEC_BY_NAME[name].default
        if isinstance(default, tuple):  # integer arrays: rclpy may hand out array.array
            got, default = list(got), list(default)
        assert _same(got, value)
        assert _same(got, default), f"{name}: yaml {value!r} != declared default"


def _same(a, b) -> bool:
    """Equal, where NaN (a sampling parameter's "model default", .nan in the YAML) equals NaN."""
    nans = [isinstance(x, float) and math.isnan(x) for x in (a, b)]
    return nans[0] and nans[1] if any(nans) else a == b


def test_every_yaml_key_has_a_comment():
    lines = CONFIG.read_text().splitlines()
    names = set(_yaml_params())
    for i, line in enumerate(lines):
        key = line.strip().split(":", 1)[0]
        if key in names and line.startswith("    "):
            j = i - 1
            while j >= 0 and lines[j].strip() and not lines[j].strip().startswith("#"):
                j -= 1  # a key of the same commented group
            assert j >= 0 and lines[j].strip().startswith("#"), f"{key} has no comment above it"


def test_descriptors_describe_every_parameter(node_from_yaml):
    for spec in P.SPECS:
        d = node_from_yaml.describe_parameter(spec.name)
        assert d.description, spec.name
        assert ("configure" in d.additional_constraints) == (spec.applied_at == "configure")
        if spec.int_range:
            assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == spec.int_range
        if spec.float_range:
            r = d.floating_point_range[0]
            assert (r.from_value, r.to_value) == spec.float_range


@pytest.mark.parametrize(
    "name,value",
    [("queue.policy", "drop_newest"), ("output.format", "mp3"), ("device", "gpu0"), ("dtype", "int8"),
     ("streaming.chunk_frames", 0), ("sampling.top_p", 1.5), ("voice.mode", "clone")],
)
def test_bad_values_are_refused_by_set_parameters(node_from_yaml, name, value):
    before = node_from_yaml.get_parameter(name).value
    result = node_from_yaml.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful
    assert _same(node_from_yaml.get_parameter(name).value, before)


def test_good_values_are_accepted_while_unconfigured(node_from_yaml):
    for name, value in (("queue.policy", "interrupt"), ("device", "cuda:1"), ("model", "/tmp/some/model")):
        before = node_from_yaml.get_parameter(name).value
        assert node_from_yaml.set_parameters([Parameter(name, value=value)])[0].successful
        assert node_from_yaml.set_parameters([Parameter(name, value=before)])[0].successful


def test_launch_file_is_python_and_starts_this_node_with_the_yaml():
    from qwen3_tts_ros import launch_args

    tree = ast.parse(LAUNCH.read_text())
    funcs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in funcs
    calls = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
            calls.setdefault(name, []).append({k.arg: k.value for k in n.keywords})
    node = calls["LifecycleNode"][0]
    assert ast.literal_eval(node["package"]) == "qwen3_tts_ros"
    assert ast.literal_eval(node["executable"]) == "tts_node"  # scripts/tts_node, installed by CMake
    assert ast.literal_eval(node["name"]) == NODE_NAME
    assert {"namespace", "parameters", "arguments", "respawn", "respawn_delay"} <= set(node)
    # The declared arguments: _arguments()'s literal names, plus launch_args.PARAMETER_ARGUMENTS.
    (arguments,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_arguments"]
    literal = {ast.literal_eval(t.elts[0]) for t in ast.walk(arguments)
               if isinstance(t, ast.Tuple) and len(t.elts) == 3 and isinstance(t.elts[0], ast.Constant)}
    assert literal == {"params_file", "namespace", "autostart", "log_level", "respawn", "respawn_delay"}
    assert "A.PARAMETER_ARGUMENTS" in ast.unparse(arguments)
    assert {a for a, _, _ in launch_args.PARAMETER_ARGUMENTS} == {"model", "device", "speaker", "language"}
    # Humble-safe auto-activation: configure, then activate on configuring -> inactive only.
    transition = calls["OnStateTransition"][0]
    assert ast.literal_eval(transition["start_state"]) == "configuring"
    assert ast.literal_eval(transition["goal_state"]) == "inactive"
    # Only the launch's own configure: a later manual configure (after a cleanup) must leave it inactive.
    assert ast.literal_eval(transition["handle_once"]) is True
    source = LAUNCH.read_text()
    # With respawn each process configures itself (a lifecycle request from launch can reach a dead process).
    assert 'overrides["autostart"] = True' in source
    assert "TRANSITION_CONFIGURE" in source and "TRANSITION_ACTIVATE" in source
    assert '"config", "tts.yaml"' in source
    assert "autostart" not in node, "LifecycleNode(autostart=) does not exist on Humble"
