"""The launch file's arguments (qwen3_tts_ros/launch_args.py): which node parameters they set, and a bad value
refused with a message naming the argument. CI has no `launch`, so the launch file itself is run by hand with
the shared launch harness (docs/NODE.md); here what it builds from the values."""
import pytest

from qwen3_tts_ros import launch_args as A


def test_every_parameter_argument_names_a_node_parameter_of_type_string():
    params = pytest.importorskip("qwen3_tts_ros.node.params", reason="the parameter table imports ROS")
    for arg, param, _ in A.PARAMETER_ARGUMENTS:
        assert isinstance(params.SPEC_BY_NAME[param].default, str), (arg, param)


def test_arguments_left_empty_leave_the_params_file_alone():
    assert A.parameter_overrides({"model": "", "device": "", "speaker": "", "language": ""}) == {}
    given = {"model": "/models/x", "device": "cuda:1", "speaker": "Vivian", "language": "English",
             "log_level": "debug"}
    assert A.parameter_overrides(given) == {
        "model": "/models/x", "device": "cuda:1", "voice.speaker": "Vivian", "voice.language": "English"}


@pytest.mark.parametrize("value,expected", [("true", True), ("True", True), ("1", True), ("false", False),
                                            ("FALSE", False), ("0", False)])
def test_booleans_read_as_launch_conditions_read_them(value, expected):
    assert A.boolean("respawn", value) is expected


def test_bad_values_are_refused_naming_the_argument():
    with pytest.raises(A.LaunchArgumentError, match=r"respawn:='yes please': must be true or false"):
        A.boolean("respawn", "yes please")
    with pytest.raises(A.LaunchArgumentError, match=r"log_level:='loud': must be one of debug, info, warn"):
        A.log_level_arguments("loud")
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(A.LaunchArgumentError, match="respawn_delay"):
            A.respawn_delay(bad)


def test_log_level_becomes_the_node_process_ros_arguments():
    assert A.log_level_arguments("DEBUG") == ["--ros-args", "--log-level", "debug"]
    assert A.respawn_delay("2.5") == 2.5
