"""The node's entities that come and go with its state: what configure creates and cleanup destroys (the
outputs, the voice services, the text-stream timeout timer, `~/stop`), and the /diagnostics timer, which
exists in every state and takes the period configure reads."""

from __future__ import annotations

from typing import Any

from std_srvs.srv import Trigger

from qwen3_tts_ros.node.stream_input import CHECK_PERIOD_S


class NodeEntities:
    def __init__(self, node, outputs, playback, publish_diagnostics, group):
        self._node, self._group = node, group
        self._outputs, self._playback = outputs, playback
        self._publish_diagnostics = publish_diagnostics
        self._inputs: list = []  # (destroy function, entity): subscription, service, timer made by configure
        self._diagnostics_timer = None

    def create(self, v: dict[str, Any], voice_services, check_timeouts, on_stop) -> None:
        """Configure's topics and services (called with the outputs' lock held)."""
        node = self._node
        self._outputs.create(v)
        self._inputs += voice_services.create(node, self._group)
        self.start_diagnostics(v["diagnostics.period_s"])
        self._keep(
            node.destroy_timer,
            node.create_timer(CHECK_PERIOD_S, check_timeouts, callback_group=self._group),
        )
        self._keep(
            node.destroy_service,
            node.create_service(Trigger, "~/stop", on_stop, callback_group=self._group),
        )

    def start_diagnostics(self, period_s: float) -> None:
        """/diagnostics every period_s (0: none), in every state: at start-up with the period the node was
        started with, again at configure (diagnostics.period_s is applied there)."""
        if self._diagnostics_timer is not None:
            if self._diagnostics_timer.timer_period_ns == round(period_s * 1e9):
                return
            self._node.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if period_s > 0:
            self._diagnostics_timer = self._node.create_timer(
                period_s, self._publish_diagnostics, callback_group=self._group
            )

    def _keep(self, destroy, entity) -> None:
        self._inputs.append((destroy, entity))

    def destroy(self) -> None:
        """Configure's entities (the /diagnostics timer stays): playback closed first, then the inputs
        under the outputs' lock, then the outputs."""
        self._playback.close()
        with self._outputs.lock:
            while self._inputs:
                destroy, entity = self._inputs.pop()
                destroy(entity)
        self._outputs.destroy()
