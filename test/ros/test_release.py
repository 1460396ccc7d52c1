"""Cleanup releases the model: the engine is gone and, on CUDA, allocated GPU memory is back to where it was
before configure (graphs captured at activate included).

The node is a real rclpy LifecycleNode in this process, driven with its own trigger_* transitions (the same
callbacks the change_state service runs), so this process's CUDA allocator is the node's.
"""
import gc

import pytest

rclpy = pytest.importorskip("rclpy")
import torch  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from qwen3_tts_ros.node.tts_node import TtsNode  # noqa: E402

SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("release_tiny"), "custom_voice", seed=3)


def _node(checkpoint, device: str):
    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = [Parameter("model", value=str(checkpoint)), Parameter("device", value=device),
                 Parameter("diagnostics.period_s", value=0.0), Parameter("warmup.text", value="Hi.")]
    return context, TtsNode(context=context, parameter_overrides=overrides)


def _cycle(node, allocated) -> list[int]:
    """configure, activate, deactivate, cleanup; GPU bytes allocated after each step."""
    seen = []
    steps = (node.trigger_configure, node.trigger_activate, node.trigger_deactivate, node.trigger_cleanup)
    for step in steps:
        assert step() == SUCCESS, step.__name__
        seen.append(allocated())
    return seen


def _run(checkpoint, device, allocated):
    context, node = _node(checkpoint, device)
    try:
        gc.collect()
        baseline = allocated()
        first = _cycle(node, allocated)
        second = _cycle(node, allocated)  # re-configurable after cleanup
        assert node._worker.model.engine is None, "cleanup must drop the engine"
        return baseline, first, second, node._worker.snapshot()
    finally:
        node.close()
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_cleanup_releases_the_engine_on_cpu(checkpoint):
    baseline, first, second, snapshot = _run(checkpoint, "cpu", lambda: 0)
    assert snapshot.cuda_graphs_captured is False
    assert snapshot.gpu_memory_allocated_mb == 0.0


@pytest.mark.gpu
def test_cleanup_returns_gpu_memory_to_the_pre_configure_level(checkpoint):
    def allocated():
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated()

    baseline, first, second, _ = _run(checkpoint, "cuda", allocated)
    for seen in (first, second):
        configured, active, inactive, cleaned = seen
        assert configured > baseline and active >= configured  # weights, then graphs' static buffers
        assert cleaned == baseline, f"{(cleaned - baseline) / 2**20:.2f} MiB still allocated after cleanup"
