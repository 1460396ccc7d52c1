"""The `qwen3_tts` lifecycle node: text on tts/text in, streamed AudioChunk messages on tts/audio out.

Threads: a MultiThreadedExecutor runs the lifecycle services (default, mutually exclusive group) and, in a
separate reentrant group, the text subscription, the stop service and the diagnostics timer, so they keep
being served while a transition waits. Every torch/CUDA call happens on the SynthesisWorker's thread;
transitions hand it their heavy work (load, capture + warm-up, release) and wait for the result.

Lifecycle (rclpy swallows exceptions raised in on_* callbacks, so each one catches, logs one line naming the
cause and returns FAILURE):
  configure  validate parameters, load the model, build the voice prompt, create topics/services
  activate   capture CUDA graphs + warm up (once per configure), then accept text
  deactivate stop the current utterance (it ends with a final chunk), drop or keep the queue
  cleanup    destroy topics/services, release the model and GPU memory; shutdown and on_error do the same
rclpy has no lifecycle subscriptions: the text subscription exists from configure on, gated by `_active`.
The `~/say` action (say_action.py) exists in every state, so a goal sent to a node that is not active is
rejected at once instead of waiting for a server, and cleanup never destroys a server whose goals' results
are still on their way; it feeds the same queue as tts/text.
Topic names are relative, so a namespace moves them all (defaults: /tts/...).
"""

from __future__ import annotations

import array
import concurrent.futures
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

import rclpy
from audio_common_msgs.msg import AudioData, AudioInfo
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from qwen3_tts_ros.engine.types import SAMPLE_RATE
from qwen3_tts_ros.msg import AudioChunk, UtteranceLatency
from qwen3_tts_ros.node import params as P
from qwen3_tts_ros.node.diagnostics import diagnostic_array, synthesis_status
from qwen3_tts_ros.node.pcm import PcmEncoder
from qwen3_tts_ros.node.say_action import SayActionServer
from qwen3_tts_ros.node.settings import load_config, utterance_settings
from qwen3_tts_ros.node.startup import import_engine_quietly
from qwen3_tts_ros.node.text import clean_text, split_sentences
from qwen3_tts_ros.node.worker import ConfigError, ModelReleased, QueuedText, SynthesisWorker, WorkerClosed

NODE_NAME = "qwen3_tts"
TRANSITION_TIMEOUT_S = 600.0  # model load / CUDA-graph capture; generous for a first load on a Jetson
DEACTIVATE_TIMEOUT_S = 30.0  # one chunk of the slowest configuration, with margin
LOG_THROTTLE_S = 5.0
# Keep-last depth of the tts/text subscription: a burst of more texts than this, faster than the executor
# takes them, loses the oldest inside DDS before the node sees them (measured: 500 texts published at once
# with depth 100 -> 101 received). Texts are small; the queue policy decides what is spoken.
TEXT_DEPTH = 1000
SPIN_TIMEOUT_S = 0.1  # longest wait of the spin loop before it checks for SIGINT/SIGTERM
RESULT_FLUSH_S = 1.0  # at exit: longest spin that hands the say goals ended by the shutdown their results
RESULT_SEND_SPINS = 5  # then spins that send them (each returns at once while there is work)
LATCHED = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


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
        self._counter_lock = threading.Lock()
        # Held while publishing from a callback or the worker and while cleanup destroys the publishers: a
        # diagnostics tick racing a cleanup published on a destroyed publisher and that ended the node.
        self._pub_lock = threading.Lock()
        # rejected: refused while not active or too long (too_long counts the latter); empty: nothing to say.
        self._counters = dict(received=0, empty=0, rejected=0, too_long=0)
        self._configured = False
        self._active = False
        # Set by SIGINT/SIGTERM (begin_shutdown) and close(); transitions waiting on the worker give up on it.
        self._closing = False
        self._state_label = "unconfigured"
        self._hardware_id = socket.gethostname()
        self._entities: list = []  # (destroy function, entity) made by configure, destroyed by cleanup
        self._pub_audio = self._pub_audio_data = self._pub_latency = None
        self._pub_speaking = self._pub_info = self._pub_diag = None
        self._audio_info: AudioInfo | None = None
        self._frame_id = ""
        self._worker = SynthesisWorker(sink=self, logger=self.get_logger())
        self._say = SayActionServer(self, self._worker, self._prepare_text, self._queue_policy, self._refusal)

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
            message = self._wait(self._worker.load(cfg))
            with self._pub_lock:  # close() sets _closing under it: no entities made after its cleanup
                if self._closing:
                    raise ShuttingDown
                self._create_entities(v)
                self._configured = True
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
            with self._pub_lock:
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
            was_speaking, cleared = self._stop_speaking(clear_queue=not keep, reason="deactivated")
            result = super().on_deactivate(state)
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(
                f"deactivate failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            )
            return TransitionCallbackReturn.FAILURE
        self._state_label = "inactive"
        self.get_logger().info(
            f"deactivated: {'stopped the current utterance, ' if was_speaking else ''}"
            f"{'kept' if keep else f'dropped {cleared}'} queued text(s)"
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
        try:
            self._wait(self._worker.release())
        except ShuttingDown:
            pass  # the worker releases what it holds when it ends
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"releasing after the failed {what} failed too: {exc}")
        self._destroy_entities()
        self._state_label = "unconfigured"
        return TransitionCallbackReturn.FAILURE

    def _stop_speaking(self, clear_queue: bool, reason: str) -> tuple[bool, int]:
        """Stop accepting text and end the current utterance (its final chunk is published before return)."""
        self._active = False
        self._worker.set_accepting(False)
        was_speaking, cleared = self._worker.stop(clear_queue=clear_queue, reason=reason)
        if not self._worker.wait_idle(DEACTIVATE_TIMEOUT_S):
            self.get_logger().error(f"the current utterance did not stop within {DEACTIVATE_TIMEOUT_S:.0f} s")
        return was_speaking, cleared

    def _release(self, what: str, final_label: str = "unconfigured") -> TransitionCallbackReturn:
        result = TransitionCallbackReturn.SUCCESS
        try:
            message = self._wait(self._worker.release())
        except ShuttingDown:
            message = "left to the worker's end (the node is shutting down)"
        except Exception as exc:  # noqa: BLE001
            self.get_logger().error(f"{what}: releasing the model failed: {type(exc).__name__}: {exc}")
            message, result = "release failed", TransitionCallbackReturn.FAILURE
        self._destroy_entities()
        self._configured = False
        self._state_label = final_label
        self.get_logger().info(f"{what}: {message}")
        return result

    # ------------------------------------------------------------------ ROS entities
    def _create_entities(self, v: dict[str, Any]) -> None:
        audio_qos = QoSProfile(
            depth=v["output.audio_depth"],
            history=HistoryPolicy.KEEP_LAST,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        lifecycle_pub = self.create_lifecycle_publisher
        self._pub_audio = self._keep(
            self.destroy_lifecycle_publisher, lifecycle_pub(AudioChunk, "tts/audio", audio_qos)
        )
        self._pub_latency = self._keep(
            self.destroy_lifecycle_publisher, lifecycle_pub(UtteranceLatency, "tts/latency", 10)
        )
        self._pub_audio_data = None
        if v["output.audio_data_topic"]:
            self._pub_audio_data = self._keep(
                self.destroy_lifecycle_publisher,
                lifecycle_pub(AudioData, v["output.audio_data_topic"], audio_qos),
            )
        # Plain publishers: "not speaking" and the stream format hold in every state.
        self._pub_speaking = self._keep(
            self.destroy_publisher, self.create_publisher(Bool, "tts/speaking", LATCHED)
        )
        self._pub_info = self._keep(
            self.destroy_publisher, self.create_publisher(AudioInfo, "tts/audio_info", LATCHED)
        )
        self._keep(
            self.destroy_subscription,
            self.create_subscription(
                String, "tts/text", self._on_text, TEXT_DEPTH, callback_group=self._text_group
            ),
        )
        self._keep(
            self.destroy_service,
            self.create_service(Trigger, "~/stop", self._on_stop, callback_group=self._io_group),
        )
        encoder = PcmEncoder(v["output.format"], SAMPLE_RATE, v["output.sample_rate"])
        self._audio_info = AudioInfo(
            channels=1,
            sample_rate=v["output.sample_rate"],
            sample_format=encoder.sample_format,
            bitrate=encoder.bitrate,
            coding_format="wave",
        )
        self._frame_id = v["output.frame_id"]
        self._pub_info.publish(self._audio_info)
        self._pub_speaking.publish(Bool(data=False))
        if v["diagnostics.period_s"] > 0:
            self._pub_diag = self._keep(
                self.destroy_publisher, self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            )
            self._keep(
                self.destroy_timer,
                self.create_timer(
                    v["diagnostics.period_s"], self._publish_diagnostics, callback_group=self._io_group
                ),
            )

    def _keep(self, destroy, entity):
        self._entities.append((destroy, entity))
        return entity

    def _destroy_entities(self) -> None:
        with self._pub_lock:
            self._pub_audio = self._pub_audio_data = self._pub_latency = None
            self._pub_speaking = self._pub_info = self._pub_diag = None
            while self._entities:
                destroy, entity = self._entities.pop()
                destroy(entity)

    # ------------------------------------------------------------------ executor callbacks (cheap only)
    def _count(self, name: str) -> None:
        with self._counter_lock:
            self._counters[name] += 1

    def _refusal(self) -> str:
        """Why no text is accepted now; "" while active."""
        return "" if self._active else f"node is {self._state_label}, not active"

    def _queue_policy(self) -> tuple[str, int]:
        return self.get_parameter("queue.policy").value, self.get_parameter("queue.max_size").value

    def _prepare_text(self, raw: str, received_at: float) -> tuple[QueuedText | None, str]:
        """A text (tts/text message or say goal) as the worker queues it, with the current text settings; or
        (None, why it is refused: "empty text" or too long)."""
        text = clean_text(raw)
        if not text:
            return None, "empty text"
        v = P.read_all(self)
        if len(text) > v["text.max_chars"]:
            limit = v["text.max_chars"]
            return None, f"text of {len(text)} characters rejected: longer than text.max_chars={limit}"
        segments = split_sentences(text) if v["text.split_sentences"] else [text]
        settings = utterance_settings(v)
        return QueuedText(segments=segments, settings=settings, received_at=received_at), ""

    def _on_text(self, msg: String) -> None:
        received_at = time.monotonic()
        self._count("received")
        refusal = self._refusal()
        if refusal:
            self._count("rejected")
            self.get_logger().warning(f"text rejected: {refusal}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        queued, reason = self._prepare_text(msg.data, received_at)
        if queued is None:
            if reason == "empty text":
                self._count("empty")
                self.get_logger().warning("empty text ignored", throttle_duration_sec=LOG_THROTTLE_S)
            else:
                self._count("rejected")
                self._count("too_long")
                self.get_logger().warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
            return
        v = P.read_all(self)
        dropped = self._worker.enqueue(queued, v["queue.policy"], v["queue.max_size"])
        if dropped is None:
            self._count("rejected")
            return
        if dropped:
            self.get_logger().warning(
                f"{v['queue.policy']}: dropped {dropped} waiting text(s)",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        was_speaking, cleared = self._worker.stop(clear_queue=True)
        response.success = True
        response.message = (
            f"{'stopped the current utterance' if was_speaking else 'nothing was speaking'}; "
            f"cleared {cleared} queued text(s)"
        )
        return response

    def _publish_diagnostics(self) -> None:
        with self._counter_lock:
            counters = dict(self._counters)
        status = synthesis_status(
            self.get_name(), self._state_label, self._worker.snapshot(), counters, self._hardware_id
        )
        with self._pub_lock:
            if self._pub_diag is not None:
                self._pub_diag.publish(diagnostic_array(self.get_clock().now().to_msg(), [status]))

    # ------------------------------------------------------------------ Sink (called on the worker thread)
    def chunk(
        self,
        utterance_id: int,
        sequence: int,
        frame_start: int,
        frame_count: int,
        is_final: bool,
        data: bytes,
    ) -> None:
        msg = AudioChunk(
            utterance_id=utterance_id,
            sequence=sequence,
            is_final=is_final,
            frame_start=frame_start,
            frame_count=frame_count,
            info=self._audio_info,
        )
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self._frame_id
        msg.audio.data = array.array("B", data)
        with self._pub_lock:
            if self._pub_audio is None:
                raise RuntimeError("audio chunk published after cleanup")  # the worker logs it
            self._pub_audio.publish(msg)
            if self._pub_audio_data is not None and data:
                self._pub_audio_data.publish(msg.audio)

    def speaking(self, value: bool) -> None:
        with self._pub_lock:
            if self._pub_speaking is not None:
                self._pub_speaking.publish(Bool(data=value))

    def latency(self, record: dict[str, Any]) -> None:
        msg = UtteranceLatency(**record)
        msg.header.stamp = self.get_clock().now().to_msg()
        with self._pub_lock:
            if self._pub_latency is not None:
                self._pub_latency.publish(msg)

    # ------------------------------------------------------------------ process
    def begin_shutdown(self) -> None:
        """From a signal handler: no locks, only the flag that transitions waiting on the worker poll."""
        self._closing = True

    def close(self, executor=None) -> bool:
        """Process exit: stop synthesis, release the model on the worker thread, end the worker; with the
        executor, spin it until the say goals that this ended have their results (bounded). False when the
        worker is still inside a model load or capture, which cannot be interrupted."""
        with self._pub_lock:
            self._closing = True
        self._active = False
        ended = self._worker.close()
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
        self._destroy_entities()
        return ended


def main(args=None) -> None:
    # Our own SIGINT/SIGTERM handling: rclpy's handler shuts the context down at once, so the utterance being
    # spoken could not publish its final chunk (players would wait for it) and the worker died mid-publish.
    # Here a signal only ends the spin loop; close() then stops synthesis cleanly while ROS still works.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    node = None

    def on_signal(signum, frame) -> None:
        stop.set()
        if node is not None:
            node.begin_shutdown()  # a configure / activate waiting on the worker gives up within 0.1 s
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    node = TtsNode()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        # The node's services exist (a launch's lifecycle request waits for an answer, not for a service),
        # but nothing spins yet, so nothing of ours logs while the import's output is being caught.
        imported = import_engine_quietly(node.get_logger(), stop)
        if imported and node.get_parameter("autostart").value and not stop.is_set():
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not stop.is_set():
                node.trigger_activate()
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
    finally:
        worker_ended = node.close(executor)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if not worker_ended:
        node.get_logger().debug("the worker thread is still loading or capturing")
    _exit_now()


def _exit_now() -> None:
    """Exit 0 without the interpreter's teardown: everything was released and ROS (its log files too) was shut
    down; the teardown of torch and the ROS wheels took about 2 s more (launch escalates to SIGTERM at 5 s),
    and around a worker or import thread still inside torch it can crash or hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
