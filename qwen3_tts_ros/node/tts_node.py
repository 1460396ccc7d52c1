"""The `qwen3_tts` lifecycle node: text on tts/text in, streamed AudioChunk messages on tts/audio out.

Threads: a MultiThreadedExecutor runs the lifecycle services (default, mutually exclusive group), the text
subscription (its own mutually exclusive group: texts in arrival order) and, in a reentrant group, the stop
service and the diagnostics timer, so they keep being served while a transition waits. Every torch/CUDA call
happens on the SynthesisWorker's thread (worker.py); transitions hand it their heavy work (load, capture +
warm-up, release: loaded_model.py) and wait for the result. Text in: text_input.py; what is published:
outputs.py (the worker's Sink); what configure creates and cleanup destroys, and the
/diagnostics timer: node_entities.py; signals, the spin loop and the exit: process.py.

Lifecycle (rclpy swallows exceptions raised in on_* callbacks, so each one catches, logs one line naming the
cause and returns FAILURE; /diagnostics then reports it as an ERROR until a configure succeeds):
  configure  validate parameters, load the model, prepare the voices, create topics/services
  activate   capture CUDA graphs + warm up (once per configure), then accept text
  deactivate stop the current utterance (it ends with a final chunk), drop or keep the queue
  cleanup    destroy topics/services, release the model and GPU memory; shutdown and on_error do the same
rclpy has no lifecycle subscriptions: the tts/text and tts/text_stream subscriptions exist in every state,
gated by `_active`, so a text sent to a node that is not active is counted and logged, never lost unseen;
/diagnostics is published in every state too. The `~/say` action (say_action.py) exists in every state, so a
goal sent to a node that is not active is rejected at once instead of waiting for a server, and cleanup never
destroys a server whose goals' results are still on their way; it feeds the same queue as tts/text.
Topic names are relative, so a namespace moves them all (defaults: /tts/...).
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
import traceback

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from qwen3_tts_ros.msg import TextChunk, TtsRequest
from qwen3_tts_ros.node import params as P
from qwen3_tts_ros.node.counted_log import REPORT_PERIOD_S
from qwen3_tts_ros.node.diagnostics import diagnostic_array, synthesis_status
from qwen3_tts_ros.node.node_entities import NodeEntities
from qwen3_tts_ros.node.outputs import NodeOutputs
from qwen3_tts_ros.node.playback import PlaybackError
from qwen3_tts_ros.node.playback_sink import PlaybackSink
from qwen3_tts_ros.node.process import SPIN_TIMEOUT_S, ExitSignals, exit_now, spin_until
from qwen3_tts_ros.node.say_action import SayActionServer
from qwen3_tts_ros.node.settings import load_config
from qwen3_tts_ros.node.startup import import_engine_quietly, waiting_for_configure
from qwen3_tts_ros.node.stream_input import StreamInput
from qwen3_tts_ros.node.text_input import TextInput
from qwen3_tts_ros.node.voice_services import VoiceServices
from qwen3_tts_ros.node.worker import SynthesisWorker
from qwen3_tts_ros.node.worker_types import ConfigError, ModelReleased, WorkerClosed

NODE_NAME = "qwen3_tts"
TRANSITION_TIMEOUT_S = 600.0  # model load / CUDA-graph capture; generous for a first load on a Jetson
DEACTIVATE_TIMEOUT_S = 30.0  # one chunk of the slowest configuration, with margin
# Keep-last depth of the tts/text subscription: a burst of more texts than this, faster than the executor
# takes them, loses the oldest inside DDS before the node sees them (measured: 500 texts published at once
# with depth 100 -> 101 received). Texts are small; the queue policy decides what is spoken.
TEXT_DEPTH = 1000
RESULT_FLUSH_S = 1.0  # at exit: longest spin that hands the say goals ended by the shutdown their results
RESULT_SEND_SPINS = 5  # then spins that send them (each returns at once while there is work)


class ShuttingDown(Exception):
    """The process is exiting: the transition in progress is abandoned."""


class TtsNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        P.declare_all(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._io_group = ReentrantCallbackGroup()
        # Texts one at a time, in the order they arrived: in the reentrant group two tts/text callbacks ran
        # at once, and a text sent right after a long one (whose cleaning and splitting take longer) was
        # queued before it (a loaded CI run, test_bad_input).
        self._text_group = MutuallyExclusiveCallbackGroup()
        self._configured = False
        self._active = False
        # Set by SIGINT/SIGTERM (begin_shutdown) and close(); transitions waiting on the worker give up on it.
        self._closing = False
        self._state_label = "unconfigured"
        self._hardware_id = socket.gethostname()
        self._outputs = NodeOutputs(self)
        self._playback = PlaybackSink(self, self._outputs, self.get_logger())  # the worker's Sink
        self._worker = SynthesisWorker(sink=self._playback, logger=self.get_logger())
        self._text = TextInput(self, self._worker, self._refusal)
        self._streams = StreamInput(self, self._text)
        self._say = SayActionServer(
            self, self._worker, self._text.prepare, self._text.route, self._text.queue_policy, self._refusal,
            self._playback,
        )
        self._voice_services = VoiceServices(self._worker, self.get_logger(), self._refusal_of_voices)
        # Why the last configure failed, for /diagnostics ("" once one succeeds).
        self._configure_error = ""
        for msg_type, topic, callback in (
            (String, "tts/text", self._text.on_text),
            (TtsRequest, "tts/request", self._text.on_request),
            (TextChunk, "tts/text_stream", self._streams.on_chunk),  # same group: taken in arrival order
        ):
            self.create_subscription(msg_type, topic, callback, TEXT_DEPTH, callback_group=self._text_group)
        self.create_timer(REPORT_PERIOD_S, self._text.warnings.flush, callback_group=self._io_group)
        self._entities = NodeEntities(
            self, self._outputs, self._playback, self._publish_diagnostics, self._io_group
        )
        self._entities.start_diagnostics(self.get_parameter("diagnostics.period_s").value)

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        for p in parameters:
            spec = P.SPEC_BY_NAME.get(p.name)
            if spec is None:
                continue
            if spec.applied_at == "configure" and self._configured:
                return SetParametersResult(
                    successful=False,
                    reason=(f"{p.name} is applied at configure; cleanup the node before changing it"),
                )
            reason = P.validate(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state_label = "configuring"
        try:
            v = P.read_all(self)
            for name, value in v.items():
                reason = P.validate(name, value)
                if reason:
                    raise ConfigError(f"invalid parameter: {reason}")
            try:
                cfg = load_config(v)
            except ValueError as exc:
                raise ConfigError(f"invalid parameter: {exc}") from exc
            try:  # before the model: a missing device fails at once
                self._playback.open(v)
            except PlaybackError as exc:
                raise ConfigError(str(exc)) from exc
            message = self._wait(self._worker.load(cfg))
            with self._outputs.lock:  # close() sets _closing under it: no entities made after its cleanup
                if self._closing:
                    raise ShuttingDown
                self._entities.create(v, self._voice_services, self._streams.check_timeouts, self._on_stop)
                self._configured = True
                self._configure_error = ""
                self._state_label = "inactive"
                self.get_logger().info(f"configured: {message}")
        except ShuttingDown:
            return self._abandon("configure")
        except ConfigError as exc:
            return self._fail("configure", str(exc))
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it; log the cause, stay unconfigured
            return self._fail("configure", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state_label = "activating"
        try:
            message = self._wait(self._worker.activate())
            with self._outputs.lock:
                if self._closing:
                    raise ShuttingDown
                result = super().on_activate(state)  # enables the lifecycle publishers
                if result == TransitionCallbackReturn.SUCCESS:
                    self._worker.set_accepting(True)
                    self._active = True
                    self._state_label = "active"
                    self.get_logger().info(f"active: {message}")
        except ShuttingDown:
            return self._abandon("activate")
        except ModelReleased as exc:  # ERROR -> on_error -> unconfigured: configure again
            self.get_logger().error(f"activate failed: {exc}")
            return TransitionCallbackReturn.ERROR
        except Exception as exc:  # noqa: BLE001
            self._state_label = "inactive"
            self.get_logger().error(f"activate failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return TransitionCallbackReturn.FAILURE
        if result != TransitionCallbackReturn.SUCCESS:
            self._state_label = "inactive"
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._state_label = "deactivating"
        try:
            keep = self.get_parameter("queue.keep_on_deactivate").value
            stopped, cleared, streams = self._stop_speaking(clear_queue=not keep, reason="deactivated")
            result = super().on_deactivate(state)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(
                f"deactivate failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            )
            return TransitionCallbackReturn.FAILURE
        self._state_label = "inactive"
        self.get_logger().info(
            f"deactivated: {stopped + ', ' if stopped else ''}"
            f"{'kept' if keep else f'dropped {cleared}'} queued text(s)"
            + (f", ended {streams} text stream(s)" if streams else "")
        )
        return result

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._release("cleanup")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_speaking(clear_queue=True, reason="shutdown")
        return self._release("shutdown", final_label="finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while {state.label}: stopping and releasing the model")
        self._stop_speaking(clear_queue=True, reason="error")
        return self._release("error recovery")  # SUCCESS -> unconfigured, re-configurable

    def _wait(self, future: concurrent.futures.Future):
        """The result of a worker task; ShuttingDown as soon as the process is exiting (the task itself may
        go on: a model load cannot be interrupted)."""
        deadline = time.monotonic() + TRANSITION_TIMEOUT_S
        while not concurrent.futures.wait([future], timeout=SPIN_TIMEOUT_S).done:
            if self._closing:
                raise ShuttingDown
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker took longer than {TRANSITION_TIMEOUT_S:.0f} s")
        try:
            return future.result()
        except WorkerClosed as exc:
            raise ShuttingDown from exc

    def _abandon(self, what: str) -> TransitionCallbackReturn:
        self.get_logger().info(f"{what} abandoned: the node is shutting down")
        self._state_label = "shutting down"
        return TransitionCallbackReturn.FAILURE

    def _fail(self, what: str, cause: str, details: str = "") -> TransitionCallbackReturn:
        self.get_logger().error(f"{what} failed: {cause}" + (f"\n{details}" if details else ""))
        self._configure_error = cause
        try:
            self._wait(self._worker.release())
        except ShuttingDown:
            pass  # the worker releases what it holds when it ends
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"releasing after the failed {what} failed too: {exc}")
        self._entities.destroy()
        self._state_label = "unconfigured"
        return TransitionCallbackReturn.FAILURE

    def _stop_speaking(self, clear_queue: bool, reason: str) -> tuple[str, int, int]:
        """Stop accepting text, end the current utterance (its final chunk is published before return) and
        every text stream; (what was stopped, "" if nothing was speaking; queued texts cleared; streams
        ended)."""
        self._active = False
        self._worker.set_accepting(False)
        (was_speaking, cleared, unspoken), streams = self._streams.stop_all(
            reason, lambda: self._worker.stop(clear_queue=clear_queue, reason=reason)
        )
        self._playback.flush()
        if not self._worker.wait_idle(DEACTIVATE_TIMEOUT_S):
            self.get_logger().error(f"the current utterance did not stop within {DEACTIVATE_TIMEOUT_S:.0f} s")
        return stopped_words(was_speaking, unspoken), cleared, streams

    def _release(self, what: str, final_label: str = "unconfigured") -> TransitionCallbackReturn:
        result = TransitionCallbackReturn.SUCCESS
        try:
            message = self._wait(self._worker.release())
        except ShuttingDown:
            message = "left to the worker's end (the node is shutting down)"
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"{what}: releasing the model failed: {type(exc).__name__}: {exc}")
            message, result = "release failed", TransitionCallbackReturn.FAILURE
        self._entities.destroy()
        self._configured = False
        self._state_label = final_label
        self.get_logger().info(f"{what}: {message}")
        return result

    # ------------------------------------------------------------------ executor callbacks (cheap only)
    def _refusal(self) -> str:
        """Why no text is accepted now; "" while active."""
        return "" if self._active else f"node is {self._state_label}, not active"

    def _refusal_of_voices(self) -> str:
        """Why voices cannot be set or removed now; "" while configured (inactive or active)."""
        return "" if self._configured else f"node is {self._state_label}, not configured"

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        (was_speaking, cleared, unspoken), streams = self._streams.stop_all("stopped", self._worker.stop)
        self._playback.flush()
        response.success = True
        response.message = (
            f"{stopped_words(was_speaking, unspoken) or 'nothing was speaking'}; "
            f"cleared {cleared} queued text(s)" + (f"; ended {streams} text stream(s)" if streams else "")
        )
        self.get_logger().info(f"~/stop: {response.message}")
        return response

    def _publish_diagnostics(self) -> None:
        stats, counters = self._worker.snapshot(), self._text.counters()
        stream_counters = self._streams.streams.counters()
        status = synthesis_status(
            self.get_name(), self._state_label, stats, counters, stream_counters, self._hardware_id,
            configure_error=self._configure_error,
        )
        playback = self._playback.status(self.get_name(), self._hardware_id)
        statuses = [status] + ([playback] if playback is not None else [])
        self._outputs.diagnostics(diagnostic_array(self.get_clock().now().to_msg(), statuses))

    # ------------------------------------------------------------------ process
    def begin_shutdown(self) -> None:
        """From a signal handler: no locks, only the flag that transitions waiting on the worker poll."""
        self._closing = True

    def close(self, executor=None) -> bool:
        """Process exit: stop synthesis, release the model on the worker thread, end the worker; with the
        executor, spin it until the say goals that this ended have their results (bounded). False when the
        worker is still inside a model load or capture, which cannot be interrupted."""
        with self._outputs.lock:
            self._closing = True
        self._active = False
        ended = self._worker.close()  # not under stop_all: the worker's end tells the streams' observers
        self._playback.close()  # silence; say goals waiting for their sound get their results below
        self._streams.stop_all("shutdown")
        if not ended:
            self.get_logger().info("exiting during a model load or graph capture (it cannot be interrupted)")
        self._say.close()
        if executor is not None:
            # Execute callbacks set the results; sending each result is one more executor task after that.
            deadline = time.monotonic() + RESULT_FLUSH_S
            while self._say.pending() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.02)
            for _ in range(RESULT_SEND_SPINS):
                executor.spin_once(timeout_sec=0.02)
        self._entities.destroy()
        return ended


def stopped_words(was_speaking: bool, unspoken: int) -> str:
    """What a stop ended, for the log and the answer: the utterance and the sentences of its text after it."""
    if not was_speaking:
        return ""
    return "stopped the current utterance" + (
        f" and the {unspoken} sentence(s) of its text after it" if unspoken else ""
    )


def main(args=None) -> None:
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)  # our own handlers (process.py)
    signals = ExitSignals()
    node = signals.node = TtsNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        # The node's services exist (a launch's lifecycle request waits for an answer, not for a service),
        # but nothing spins yet, so nothing of ours logs while the import's output is being caught.
        imported = import_engine_quietly(node.get_logger(), signals.stop)
        if not node.get_parameter("autostart").value:
            node.get_logger().info(waiting_for_configure(node.get_fully_qualified_name()))
        elif imported and not signals.stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not signals.stop.is_set():
                node.trigger_activate()
        spin_until(signals.stop, executor, node)
    finally:
        worker_ended = node.close(executor)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if not worker_ended:
        node.get_logger().debug("the worker thread is still loading or capturing")
    exit_now()


if __name__ == "__main__":
    main()
