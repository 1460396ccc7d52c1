"""The node as a process: our own SIGINT/SIGTERM handling, the spin loop, and the exit.

rclpy's signal handler shuts the context down at once, so the utterance being spoken could not publish its
final chunk (players would wait for it) and the worker died mid-publish. Here a signal only ends the spin
loop; the node's close() then stops synthesis cleanly while ROS still works.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

import rclpy
from rclpy.executors import ExternalShutdownException

SPIN_TIMEOUT_S = 0.1  # longest wait of the spin loop before it checks for SIGINT/SIGTERM


class ExitSignals:
    """SIGINT/SIGTERM set `stop` and tell the node (`begin_shutdown`: a configure / activate waiting on the
    worker gives up within a spin timeout); a second signal ends the process at once."""

    def __init__(self):
        self.stop = threading.Event()
        self.node = None
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.stop.set()
        if self.node is not None:
            self.node.begin_shutdown()
        signal.signal(signum, signal.SIG_DFL)


def spin_until(stop: threading.Event, executor, node) -> None:
    """Spin until `stop` is set or ROS shuts down; a failing callback is logged, never ends the node."""
    while not stop.is_set() and rclpy.ok():
        try:
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)  # returns to Python, so signals are seen
        except ExternalShutdownException:
            break
        except Exception as exc:  # noqa: BLE001 - a failing callback must not end a node that runs for days
            if type(exc).__name__ == "InvalidHandle":
                # rclpy's executor can take from an entity (e.g. a publisher's QoS event handler) that a
                # cleanup on another executor thread is destroying; nothing of ours is lost.
                node.get_logger().warning(f"rclpy: entity destroyed while in use, ignored ({exc})")
            else:
                node.get_logger().error("callback failed: " + traceback.format_exc())


def exit_now() -> None:
    """Exit 0 without the interpreter's teardown: everything was released and ROS (its log files too) was shut
    down; the teardown of torch and the ROS wheels took about 2 s more (launch escalates to SIGTERM at 5 s),
    and around a worker or import thread still inside torch it can crash or hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
