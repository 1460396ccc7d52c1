"""The `~/say` action (qwen3_tts_ros/action/Say): a text spoken through the node's queue, with feedback per
published chunk and a result once it has been spoken (or, with wait_for_playback, would have been played).

No callback of this server waits for speech: rclpy's executors (Humble to Rolling) run a pending coroutine
again on every spin, so an execute callback that awaited the speech would keep an executor thread busy
for the whole goal, and a blocking one would hold a thread per goal (200 queued goals, 3 threads). Instead:
  goal callback      accept or reject at once (node not active, empty or too long text, queue full)
  accepted callback  queue the text in the SynthesisWorker with a SayGoal as its observer (status ACCEPTED)
  worker thread      SayGoal.chunk publishes feedback; SayGoal.ended gives the goal its outcome
  execute callback   run (goal_handle.execute()) only once the outcome is known, and immediately: it sets
                     the terminal state and returns the result. With wait_for_playback the server's own
                     thread calls execute() when the playback would end, or, with playback.enabled, the
                     playback thread when the device has played the goal's last sample
                     (playback_sink.PlaybackSink.watch).
  cancel callback    accept; the same thread cancels the text in the worker once rclpy has put the goal in
                     CANCELING (so the state machine allows CANCELED), within one chunk like ~/stop.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import QoSProfile

from qwen3_tts_ros.action import Say
from qwen3_tts_ros.node.qos import ACTION_REQUESTS
from qwen3_tts_ros.node.text_input import URGENCY_POLICY
from qwen3_tts_ros.node.worker import SynthesisWorker
from qwen3_tts_ros.node.worker_types import QueuedText, QueueFull

LOG_THROTTLE_S = 5.0
# One feedback per chunk: a burst of short goals publishes them faster than rclpy's default depth (10) holds.
FEEDBACK_DEPTH = 100
CANCEL_POLL_S = 0.005  # a cancel request waits for rclpy's CANCELING state (set right after our callback)


class SayGoal:
    """One accepted goal: the observer of its queued text (worker.TextObserver) and what its result says."""

    def __init__(self, goal_handle, wait_for_playback: bool, server: SayActionServer, playback=None):
        self.goal_handle = goal_handle
        self.wait_for_playback = wait_for_playback
        self.accepted_at = time.monotonic()
        self.text: QueuedText | None = None
        self._server = server
        self._lock = threading.Lock()
        self.utterance_ids: list[int] = []
        self.audio_seconds = 0.0
        self.played_seconds = 0.0
        self.frames = 0
        self._sound = playback  # PlaybackSink: told when each utterance's sound ended
        self._concluded = False
        self.first_chunk_at: float | None = None
        self.ended_by = ""
        self.error = ""

    # ------------------------------------------------------------------ worker.TextObserver
    def chunk(self, utterance_id: int, frames: int, audio_seconds: float) -> None:
        with self._lock:
            if self.first_chunk_at is None:
                self.first_chunk_at = time.monotonic()
            new = not self.utterance_ids or self.utterance_ids[-1] != utterance_id
            if new:
                self.utterance_ids.append(utterance_id)
            self.audio_seconds += audio_seconds
            self.frames += frames
            feedback = self._feedback(utterance_id)
        if new and self._sound is not None:
            self._sound.watch(utterance_id, self._played)
        self.goal_handle.publish_feedback(feedback)

    def _feedback(self, utterance_id: int) -> Say.Feedback:  # with the lock held
        return Say.Feedback(
            utterance_id=utterance_id,
            audio_seconds=self.audio_seconds,
            frames=self.frames,
            played_seconds=self.played_seconds,
        )

    def _played(self, utterance_id: int, played_s: float, flushed: bool) -> None:
        """One of its utterances has been played (or silenced): feedback with the seconds played."""
        with self._lock:
            self.played_seconds += played_s
            feedback = self._feedback(utterance_id)
            if self._concluded:
                return
        self.goal_handle.publish_feedback(feedback)

    def sound_ended(self, utterance_id: int, played_s: float, flushed: bool) -> None:
        """wait_for_playback with playback on: its last utterance has been played (or silenced)."""
        with self._lock:
            if self._concluded:
                return
            self._concluded = True
            if flushed and self.goal_handle.is_cancel_requested:
                self.ended_by = "cancelled"
        self.goal_handle.execute()

    def ended(self, outcome: str, error: str) -> None:
        with self._lock:
            if self.ended_by:  # exactly once, whoever reports first
                return
            self.ended_by, self.error = outcome, error
        self._server.goal_ended(self)

    # ------------------------------------------------------------------ result
    def playback_end(self) -> float:
        """When the goal's audio would have finished playing at real-time speed (time.monotonic())."""
        with self._lock:
            start = self.first_chunk_at if self.first_chunk_at is not None else time.monotonic()
            return start + self.audio_seconds

    def result(self) -> Say.Result:
        with self._lock:
            ttfa = (self.first_chunk_at - self.accepted_at) * 1e3 if self.first_chunk_at is not None else 0.0
            return Say.Result(
                ended_by=self.ended_by,
                error=self.error,
                utterance_ids=list(self.utterance_ids),
                audio_seconds=self.audio_seconds,
                time_to_first_audio_ms=ttfa,
            )


class SayActionServer:
    """`~/say` on `node`, feeding `worker`. `prepare(text, received_at)` turns a goal's text into a QueuedText
    with the node's current text settings, or returns the reason it is refused; `route(voice, language,
    instruct, urgency)` gives the goal's voice fields and queue policy (TextInput.route; ValueError: the goal
    ends "rejected", its error says why); `policy()` gives (queue.policy, queue.max_size); `refusal()` why no
    text is accepted now ("" when active)."""

    def __init__(  # fmt: skip
        self,
        node,
        worker: SynthesisWorker,
        prepare: Callable[[str, float], tuple[QueuedText | None, str]],
        route: Callable[[str, str, str, str], tuple[dict | None, str]],
        policy: Callable[[], tuple[str, int]],
        refusal: Callable[[], str],
        playback=None,
    ):
        self._node = node
        self._worker = worker
        self._prepare = prepare
        self._route = route
        self._policy = policy
        self._refusal = refusal
        self._sound = playback  # PlaybackSink (watch, flush, player)
        self._log = node.get_logger()
        self._cond = threading.Condition()
        self._goals: dict[bytes, SayGoal] = {}  # accepted, result not yet handed to rclpy
        self._playback: list[tuple[float, int, SayGoal]] = []  # heap: goals waiting for their playback end
        self._cancels: list[SayGoal] = []  # cancel accepted, waiting for rclpy's CANCELING state
        self._order = itertools.count()
        self._closing = False
        self._server = ActionServer(
            node,
            Say,
            "~/say",
            execute_callback=self._conclude,
            goal_callback=self._on_goal,
            handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel,
            callback_group=MutuallyExclusiveCallbackGroup(),
            goal_service_qos_profile=ACTION_REQUESTS,
            result_service_qos_profile=ACTION_REQUESTS,
            cancel_service_qos_profile=ACTION_REQUESTS,
            feedback_pub_qos_profile=QoSProfile(depth=FEEDBACK_DEPTH),
        )
        self._thread = threading.Thread(target=self._run, name="qwen3_tts_say", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ rclpy callbacks (executor threads)
    def _on_goal(self, goal: Say.Goal) -> GoalResponse:
        # One throttled log call per kind of reason, so that a flood of one kind hides no other kind.
        reason = self._refusal()
        if reason:
            self._log.warning(f"say goal rejected: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
            return GoalResponse.REJECT
        _, reason = self._prepare(goal.text, time.monotonic())
        if reason:
            self._log.warning(f"say goal rejected: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
            return GoalResponse.REJECT
        policy, max_size = self._policy()
        policy = URGENCY_POLICY.get(goal.urgency, policy)  # an unknown urgency: rejected in _on_accepted
        if policy == "queue" and self._worker.waiting() >= max_size:
            self._log.warning(
                f"say goal rejected: queue full ({max_size} waiting, queue.max_size)",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, goal_handle) -> None:
        player_on = self._sound is not None and self._sound.player is not None
        goal = SayGoal(
            goal_handle, goal_handle.request.wait_for_playback, self, self._sound if player_on else None
        )
        with self._cond:
            self._goals[bytes(goal_handle.goal_id.uuid)] = goal
        request = goal_handle.request
        text, reason = self._prepare(request.text, goal.accepted_at)
        if text is None:  # parameters changed since the goal callback
            goal.ended("error", reason)
            return
        try:
            text.voice, policy = self._route(
                request.voice, request.language, request.instruct, request.urgency
            )
        except ValueError as exc:  # accepted so that the result can say why
            self._log.warning(f"say goal rejected: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            goal.ended("rejected", str(exc))
            return
        text.observer = goal
        goal.text = text
        _, max_size = self._policy()
        try:
            dropped = self._worker.enqueue(text, policy, max_size, reject_when_full=True)
        except QueueFull as exc:  # another text filled the queue after the goal callback
            goal.ended("dropped", str(exc))
            return
        if dropped is None:  # a deactivate won the race
            goal.ended("deactivated", "")

    def _on_cancel(self, goal_handle) -> CancelResponse:
        with self._cond:
            goal = self._goals.get(bytes(goal_handle.goal_id.uuid))
            if goal is None:
                return CancelResponse.REJECT
            self._cancels.append(goal)
            self._cond.notify_all()
        return CancelResponse.ACCEPT

    def _conclude(self, goal_handle) -> Say.Result:
        """The execute callback, run once the goal's outcome is known: terminal state and result."""
        with self._cond:
            goal = self._goals.pop(bytes(goal_handle.goal_id.uuid))
        if goal.ended_by == "cancelled" and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif goal.ended_by == "done":
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return goal.result()

    # ------------------------------------------------------------------ outcome (worker / own thread)
    def goal_ended(self, goal: SayGoal) -> None:
        if goal.ended_by == "done" and goal.wait_for_playback and goal.utterance_ids and self._sound:
            if self._sound.watch(goal.utterance_ids[-1], goal.sound_ended):  # playback on
                return
        if goal.ended_by == "done" and goal.wait_for_playback and goal.playback_end() > time.monotonic():
            with self._cond:
                heapq.heappush(self._playback, (goal.playback_end(), next(self._order), goal))
                self._cond.notify_all()
            return
        goal.goal_handle.execute()  # -> _conclude on an executor thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    now = time.monotonic()
                    handles = [g.goal_handle for g in self._cancels]
                    if any(h.is_cancel_requested or not h.is_active for h in handles):
                        break
                    if self._playback and self._playback[0][0] <= now:
                        break
                    timeout = self._playback[0][0] - now if self._playback else None
                    if self._cancels:
                        timeout = CANCEL_POLL_S if timeout is None else min(timeout, CANCEL_POLL_S)
                    self._cond.wait(timeout)
                if self._closing:
                    return
                cancels = [g for g in self._cancels if g.goal_handle.is_cancel_requested]
                self._cancels = [g for g in self._cancels if g not in cancels and g.goal_handle.is_active]
                due = []
                while self._playback and self._playback[0][0] <= time.monotonic():
                    due.append(heapq.heappop(self._playback)[2])
                waiting = {id(g) for _, _, g in self._playback}
            for goal in cancels:
                if id(goal) in waiting:  # spoken, waiting for the playback end: end it now
                    with self._cond:
                        self._playback = [e for e in self._playback if e[2] is not goal]
                        heapq.heapify(self._playback)
                    goal.ended_by = "cancelled"
                    goal.goal_handle.execute()
                elif goal.text is not None and not goal.ended_by:
                    self._worker.cancel(goal.text, "cancelled")  # ended() follows, within one chunk
                    if self._sound is not None and goal.utterance_ids:
                        self._sound.flush(goal.utterance_ids[-1])  # silence what it has played
                elif goal.ended_by == "done" and self._sound is not None and goal.utterance_ids:
                    self._sound.flush(goal.utterance_ids[-1])  # sounding: sound_ended(flushed) ends it
            for goal in due:
                goal.goal_handle.execute()

    # ------------------------------------------------------------------ process
    def pending(self) -> int:
        """Goals whose result has not been handed to rclpy yet."""
        with self._cond:
            return len(self._goals)

    def close(self) -> None:
        """Process exit: goals still waiting for their playback end get their result now."""
        with self._cond:
            self._closing = True
            waiting = [g for _, _, g in self._playback]
            self._playback = []
            self._cond.notify_all()
        self._thread.join(5.0)
        for goal in waiting:
            goal.goal_handle.execute()
