"""configure fails cleanly (FAILURE, node stays unconfigured, nothing stays loaded) for voice settings that
do not fit the model; fixing the parameters then configures.

In-process real LifecycleNode driven with trigger_configure (the change_state service's callback).
"""
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from qwen3_tts_ros.node.tts_node import TtsNode  # noqa: E402


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from qwen3_tts_ros.testing.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("configure_errors")
    return {kind: write_tiny_checkpoint(root / kind, kind, seed=5) for kind in ("base", "custom_voice")}


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    n = TtsNode(context=context, parameter_overrides=[Parameter("device", value="cpu"),
                                                      Parameter("diagnostics.period_s", value=0.0)])
    yield n
    n.close()
    n.destroy_node()
    rclpy.shutdown(context=context)


def _configure(node, **values) -> TransitionCallbackReturn:
    results = node.set_parameters([Parameter(k.replace("__", "."), value=v) for k, v in values.items()])
    assert all(r.successful for r in results), [r.reason for r in results]
    return node.trigger_configure()


CASES = [
    ("custom_voice", dict(voice__speaker="nobody")),
    ("custom_voice", dict(voice__mode="voice_clone")),
    ("custom_voice", dict(voice__language="Klingon")),
    ("base", dict(voice__ref_audio="")),  # voice_clone needs a reference
    ("base", dict(voice__ref_audio="https://example.com/ref.wav")),  # URL without allow_download
    ("base", dict(voice__ref_audio="/nonexistent/ref.wav", voice__ref_text="hello")),
    ("base", dict(voice__ref_audio=__file__, voice__ref_text="")),  # a file, but no transcript
]


@pytest.mark.parametrize("kind,values", CASES)
def test_bad_voice_settings_fail_configure_and_leave_the_node_reconfigurable(node, checkpoints, kind, values):
    assert _configure(node, model=str(checkpoints[kind]), **values) == TransitionCallbackReturn.FAILURE
    assert node._worker._engine is None, "a failed configure must not keep the model loaded"
    assert not node._configured
    # The node is still unconfigured: fix the parameters and configure again.
    fixed = dict(model=str(checkpoints["custom_voice"]), voice__mode="", voice__speaker="",
                 voice__language="Auto", voice__ref_audio="", voice__ref_text="")
    assert _configure(node, **fixed) == TransitionCallbackReturn.SUCCESS
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
