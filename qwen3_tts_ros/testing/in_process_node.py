"""The node in the test's own process: a TtsNode on a MultiThreadedExecutor (as main() runs it), configured
and active, and a client node of a second ROS context, so their topics go over real DDS."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter


@contextlib.contextmanager
def in_process_node(namespace: str, values: dict[str, Any], client_name: str):
    """(node, client): the node configured and active with parameters `values`, both spinning on threads;
    everything is shut down afterwards."""
    from qwen3_tts_ros.node.tts_node import TtsNode

    node_ctx, client_ctx = rclpy.Context(), rclpy.Context()
    rclpy.init(context=node_ctx)
    rclpy.init(context=client_ctx)
    overrides = [Parameter(name, value=value) for name, value in values.items()]
    node = TtsNode(context=node_ctx, namespace=namespace, parameter_overrides=overrides)
    node_exec = MultiThreadedExecutor(num_threads=3, context=node_ctx)
    node_exec.add_node(node)
    client = rclpy.create_node(client_name, context=client_ctx)
    client_exec = SingleThreadedExecutor(context=client_ctx)
    client_exec.add_node(client)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        for executor in (node_exec, client_exec):
            threading.Thread(target=executor.spin, daemon=True).start()
        yield node, client
    finally:
        node_exec.shutdown(timeout_sec=1.0)
        client_exec.shutdown(timeout_sec=1.0)
        node.close()
        node.destroy_node()
        client.destroy_node()
        rclpy.shutdown(context=node_ctx)
        rclpy.shutdown(context=client_ctx)
