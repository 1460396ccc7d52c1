"""A client of the qwen3_tts node over real ROS 2 interfaces: start the node process, drive its lifecycle
through the standard services, send text, collect the audio stream.
Used by scripts/say.py and the integration tests.

It only uses what any other ROS node would: <ns>/<node>/change_state and get_state (lifecycle_msgs),
<ns>/tts/text, <ns>/tts/text_stream,
<ns>/tts/audio, <ns>/tts/audio_info, <ns>/tts/speaking, <ns>/tts/latency, /diagnostics,
<ns>/<node>/stop and the <ns>/<node>/say action (<ns> is the node's namespace, "" by default).
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from action_msgs.msg import GoalStatus
from audio_common_msgs.msg import AudioInfo
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from qwen3_tts_ros.action import Say
from qwen3_tts_ros.msg import AudioChunk, TextChunk, UtteranceLatency
from qwen3_tts_ros.node.qos import ACTION_REQUESTS

TRANSITIONS = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
# Transient-local like the node's publishers; depth 10 so a quick true -> false is not collapsed into one.
LATCHED = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def param_arg(name: str, value: Any) -> str:
    """`-p` argument text for a parameter override (values are parsed as YAML by rcl)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        text = repr(value)
    return f"{name}:={text}"


class NodeProcess:
    """The node as a real OS process: `python -m qwen3_tts_ros.node.tts_node --ros-args ...`."""

    def __init__(self, params_file: str | None = None, overrides: dict[str, Any] | None = None,
                 namespace: str = "", log_path: str | None = None, extra_ros_args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        cmd = [sys.executable, "-m", "qwen3_tts_ros.node.tts_node", "--ros-args"]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        if params_file:
            cmd += ["--params-file", params_file]
        for name, value in (overrides or {}).items():
            cmd += ["-p", param_arg(name, value)]
        cmd += extra_ros_args or []
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        # Own process group: the ROS wheels may re-execute the interpreter; signals must reach whatever runs.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})), start_new_session=True)

    def log_text(self) -> str:
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5.0)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode


@dataclasses.dataclass
class Received:
    msg: Any
    at: float  # time.monotonic() on arrival


STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_CANCELED: "canceled",
                GoalStatus.STATUS_ABORTED: "aborted"}


@dataclasses.dataclass
class SayGoal:
    """One goal sent to <node>/say and what came back, filled in by the client's executor thread.
    `*_stamp_ns` are ROS clock (system time) readings on arrival here, comparable with the node's header
    stamps: the node and this client read the same clock on one machine."""

    text: str
    sent_at: float  # time.monotonic()
    accepted: bool | None = None  # None until the goal response arrives
    handle: Any = None
    feedback: list[Received] = dataclasses.field(default_factory=list)
    status: str = ""  # "succeeded", "canceled", "aborted" once the result has arrived
    result: Any = None  # Say.Result
    results: int = 0  # result responses received (1 for every accepted goal)
    result_at: float = 0.0  # time.monotonic()
    result_stamp_ns: int = 0

    @property
    def finished(self) -> bool:
        return self.accepted is False or self.results > 0


class TtsClient:
    """Publishes text and records everything the node publishes; spins its own executor in a thread."""

    def __init__(self, namespace: str = "", node_name: str = "qwen3_tts",
                 client_name: str = "qwen3_tts_client"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(client_name, context=self.context)
        ns = namespace.rstrip("/")
        self.node_path = f"{ns}/{node_name}"
        self.status_name = f"{node_name}: synthesis"  # the node's status on /diagnostics
        self._lock = threading.Condition()
        self.chunks: list[Received] = []
        self.speaking: list[Received] = []
        self.latency: list[Received] = []
        self.diagnostics: list[Received] = []
        self.audio_info: list[Received] = []
        n = self.node
        audio_qos = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST,
                               reliability=ReliabilityPolicy.RELIABLE)
        n.create_subscription(AudioChunk, f"{ns}/tts/audio", self._recorder(self.chunks), audio_qos)
        n.create_subscription(Bool, f"{ns}/tts/speaking", self._recorder(self.speaking), LATCHED)
        n.create_subscription(AudioInfo, f"{ns}/tts/audio_info", self._recorder(self.audio_info), LATCHED)
        n.create_subscription(UtteranceLatency, f"{ns}/tts/latency", self._recorder(self.latency), 100)
        n.create_subscription(DiagnosticArray, "/diagnostics", self._recorder(self.diagnostics), 100)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.text_pub = n.create_publisher(String, f"{ns}/tts/text", reliable)
        self.stream_pub = n.create_publisher(TextChunk, f"{ns}/tts/text_stream", reliable)
        self._change = n.create_client(ChangeState, f"{self.node_path}/change_state")
        self._get = n.create_client(GetState, f"{self.node_path}/get_state")
        self._stop = n.create_client(Trigger, f"{self.node_path}/stop")
        self._set_params = n.create_client(SetParameters, f"{self.node_path}/set_parameters")
        self._get_params = n.create_client(GetParameters, f"{self.node_path}/get_parameters")
        # Deep queues: a burst of goals (and their result requests) must not lose any inside DDS.
        self.say_action = ActionClient(
            n, Say, f"{self.node_path}/say", goal_service_qos_profile=ACTION_REQUESTS,
            result_service_qos_profile=ACTION_REQUESTS, cancel_service_qos_profile=ACTION_REQUESTS,
            feedback_sub_qos_profile=QoSProfile(depth=1000))
        self.goals: list[SayGoal] = []
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down under us
                if self.context.ok():
                    raise
                return

    def _recorder(self, into: list[Received]) -> Callable[[Any], None]:
        def record(msg) -> None:
            now = time.monotonic()
            with self._lock:
                into.append(Received(msg, now))
                self._lock.notify_all()
        return record

    def close(self) -> None:
        rclpy.shutdown(context=self.context)
        self._thread.join(5.0)
        self.node.destroy_node()

    # ------------------------------------------------------------------ the say action
    def send_goal(self, text: str, wait_for_playback: bool = False, timeout: float = 30.0) -> SayGoal:
        """Send a goal to <node>/say without waiting for it; the returned record fills in as answers come."""
        if not self.say_action.wait_for_server(timeout_sec=timeout):
            raise TimeoutError(f"action {self.node_path}/say not available after {timeout:.0f} s")
        goal = SayGoal(text=text, sent_at=time.monotonic())
        with self._lock:
            self.goals.append(goal)

        def on_feedback(msg) -> None:
            with self._lock:
                goal.feedback.append(Received(msg.feedback, time.monotonic()))
                self._lock.notify_all()

        def on_result(future) -> None:
            response = future.result()
            with self._lock:
                goal.result_at = time.monotonic()
                goal.result_stamp_ns = self.node.get_clock().now().nanoseconds
                goal.status = STATUS_NAMES.get(response.status, f"status {response.status}")
                goal.result = response.result
                goal.results += 1
                self._lock.notify_all()

        def on_response(future) -> None:
            handle = future.result()
            with self._lock:
                goal.handle = handle
                goal.accepted = bool(handle.accepted)
                self._lock.notify_all()
            if handle.accepted:
                handle.get_result_async().add_done_callback(on_result)

        request = Say.Goal(text=text, wait_for_playback=wait_for_playback)
        self.say_action.send_goal_async(request, feedback_callback=on_feedback).add_done_callback(on_response)
        return goal

    def cancel_goal(self, goal: SayGoal, timeout: float = 10.0) -> None:
        """Ask the node to cancel an accepted goal (its result then says how it ended)."""
        if not self.wait_for(lambda: goal.handle is not None, timeout):
            raise TimeoutError("no goal response")
        done = threading.Event()
        goal.handle.cancel_goal_async().add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"no answer to the cancel request within {timeout:.0f} s")

    def say_and_wait(self, text: str, wait_for_playback: bool = False, timeout: float = 600.0) -> SayGoal:
        """Send a goal and wait for its result (or its rejection)."""
        goal = self.send_goal(text, wait_for_playback, timeout=timeout)
        if not self.wait_for(lambda: goal.finished, timeout):
            raise TimeoutError(f"the say goal did not finish within {timeout:.0f} s")
        return goal

    # ------------------------------------------------------------------ waiting
    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"no answer from {client.srv_name} within {timeout:.0f} s")
        return future.result()

    # ------------------------------------------------------------------ lifecycle and services
    def get_state(self, timeout: float = 30.0) -> str:
        return self._call(self._get, GetState.Request(), timeout).current_state.label

    def change_state(self, transition: str, timeout: float = 300.0) -> bool:
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return bool(self._call(self._change, request, timeout).success)

    def stop(self, timeout: float = 10.0) -> Trigger.Response:
        return self._call(self._stop, Trigger.Request(), timeout)

    def set_params(self, values: dict[str, Any], timeout: float = 10.0) -> list[tuple[bool, str]]:
        """Set parameters through <node>/set_parameters; (successful, reason) per parameter."""
        request = SetParameters.Request()
        request.parameters = [Parameter(name, value=v).to_parameter_msg() for name, v in values.items()]
        return [(r.successful, r.reason) for r in self._call(self._set_params, request, timeout).results]

    def get_params(self, names: list[str], timeout: float = 10.0) -> dict[str, Any]:
        """Current values of parameters through <node>/get_parameters."""
        request = GetParameters.Request(names=list(names))
        values = self._call(self._get_params, request, timeout).values
        return {name: parameter_value_to_python(v) for name, v in zip(names, values)}

    # ------------------------------------------------------------------ text in, audio out
    def wait_for_subscriber(self, timeout: float = 30.0) -> bool:
        """Until the node's tts/text and tts/text_stream subscriptions are matched."""
        deadline = time.monotonic() + timeout
        while self.text_pub.get_subscription_count() < 1 or self.stream_pub.get_subscription_count() < 1:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def say(self, text: str) -> float:
        """Publish one text; returns time.monotonic() just before publishing."""
        t = time.monotonic()
        self.text_pub.publish(String(data=text))
        return t

    def send_chunk(self, stream_id: str, sequence: int, text: str, final: bool = False) -> None:
        """Publish one TextChunk of a text stream."""
        self.stream_pub.publish(TextChunk(stream_id=stream_id, sequence=sequence, text=text, final=final))

    def count(self, name: str) -> int:
        with self._lock:
            return len(getattr(self, name))

    def mark(self) -> dict[str, int]:
        """How much of each recording exists now; pass it to wait_done / utterances to look only after it."""
        with self._lock:
            return {n: len(getattr(self, n)) for n in ("chunks", "speaking", "latency", "diagnostics")}

    def done_since(self, mark: dict[str, int]) -> bool:
        """Since `mark`: speaking went true and is false again, every utterance seen ended with a final chunk,
        and each has its latency message."""
        with self._lock:
            speaking = [r.msg.data for r in self.speaking[mark["speaking"]:]]
            ids = {r.msg.utterance_id for r in self.chunks[mark["chunks"]:]}
            finals = {r.msg.utterance_id for r in self.chunks[mark["chunks"]:] if r.msg.is_final}
            latencies = {r.msg.utterance_id for r in self.latency[mark["latency"]:]}
        return (True in speaking and speaking[-1] is False and bool(ids) and ids == finals
                and ids <= latencies)

    def wait_done(self, mark: dict[str, int], timeout: float) -> bool:
        return self.wait_for(lambda: self.done_since(mark), timeout)

    def statuses(self, since: int = 0) -> list[dict[str, str]]:
        """Key/values of every '<node>: synthesis' diagnostic status received from index `since`, plus
        "_level" (0 OK, 1 WARN, 2 ERROR) and "_message"."""
        with self._lock:
            received = list(self.diagnostics[since:])
        out = []
        for r in received:
            for status in r.msg.status:
                if status.name == self.status_name:
                    level = status.level  # a `byte` field: bytes of length 1 in rclpy
                    level = level[0] if isinstance(level, bytes) else int(level)
                    out.append({kv.key: kv.value for kv in status.values} | {"_level": level,
                                                                             "_message": status.message})
        return out

    def status(self, after: int = -1, timeout: float = 10.0) -> dict[str, str]:
        """The newest synthesis status; with after=-1 (default) one published after this call, so the
        statistics it reports are at least this recent."""
        if after < 0:
            after = self.count("diagnostics") + 1
        if not self.wait_for(lambda: self.count("diagnostics") > after, timeout):
            raise TimeoutError("no /diagnostics")
        found = self.statuses(after - 1)
        if not found:
            raise AssertionError(f"no '{self.status_name}' status on /diagnostics")
        return found[-1]

    def latencies(self, since: int = 0) -> list:
        with self._lock:
            return [r.msg for r in self.latency[since:]]

    def finals(self, since: int = 0) -> list[AudioChunk]:
        with self._lock:
            return [r.msg for r in self.chunks[since:] if r.msg.is_final]

    def stream_problems(self, since: int = 0) -> list[str]:
        """What is wrong with the chunk stream from index `since`: per utterance, sequence numbers must be
        0, 1, 2, ... with contiguous frame ranges, and exactly the last chunk must be final. [] when sound."""
        problems = []
        for uid, received in self.utterances(since).items():
            msgs = [r.msg for r in received]
            if [m.sequence for m in msgs] != list(range(len(msgs))):
                problems.append(f"utterance {uid}: sequence {[m.sequence for m in msgs]}")
            if [m.is_final for m in msgs] != [False] * (len(msgs) - 1) + [True]:
                problems.append(f"utterance {uid}: final flags {[m.is_final for m in msgs]}")
            starts = [sum(m.frame_count for m in msgs[:i]) for i in range(len(msgs))]
            if [m.frame_start for m in msgs] != starts:
                problems.append(f"utterance {uid}: frame_start {[m.frame_start for m in msgs]} != {starts}")
        return problems

    def utterances(self, since: int = 0) -> dict[int, list[Received]]:
        """Received chunks (from index `since`) grouped by utterance_id, in arrival order."""
        groups: dict[int, list[Received]] = {}
        with self._lock:
            for r in self.chunks[since:]:
                groups.setdefault(r.msg.utterance_id, []).append(r)
        return groups
