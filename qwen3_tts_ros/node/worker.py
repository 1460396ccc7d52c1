"""The synthesis worker: one thread that owns the engine and does ALL torch/CUDA work.

Model loading (configure), CUDA-graph capture and warm-up (activate), generation, decoding and release
(cleanup) run on this thread only, so a CUDA-graph capture never sees another thread's CUDA work and torch
never runs on an executor thread. Executor callbacks only call the cheap, lock-protected methods here
(enqueue, stop, snapshot) and wait on futures for transitions. The worker publishes chunks itself through
the `Sink` it was given (rclpy publishers are thread-safe), which keeps time to first audio free of executor
hand-offs."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from qwen3_tts_ros.node import utterance
from qwen3_tts_ros.node.loaded_model import LoadedModel
from qwen3_tts_ros.node.worker_stats import WorkerStats
from qwen3_tts_ros.node.worker_types import (
    LoadConfig,
    Logger,
    QueuedText,
    QueueFull,
    Segment,
    Sink,
    WorkerClosed,
)


def _settle(future: concurrent.futures.Future, result: Any, error: BaseException | None) -> None:
    """Complete a task's future unless close() has already failed it."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


class SynthesisWorker:
    def __init__(self, sink: Sink, logger: Logger):
        self._sink = sink
        self._log = logger
        self._cond = threading.Condition()
        self._tasks: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            collections.deque()
        )
        self._queue: collections.deque[QueuedText] = collections.deque()
        self._accepting = False  # texts are taken from the queue only while active
        self._current: QueuedText | None = None
        self._closing = False
        self._task_future: concurrent.futures.Future | None = None  # the task running now, if any
        self._speaking = False
        self._next_utterance_id = 0
        self._stats = WorkerStats()  # written by the worker under the lock, read through snapshot()
        # What configure loaded (worker thread only; public for tests and bench/ that run on that thread).
        self.model = LoadedModel(logger, self._stats, self._cond)
        self._thread = threading.Thread(target=self._run, name="qwen3_tts_worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called from executor threads
    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `fn` on the worker thread (before any waiting utterance)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                future.set_exception(WorkerClosed("the node is shutting down"))  # the transition abandons
                return future
            self._tasks.append((fn, future))
            self._cond.notify_all()
        return future

    def load(self, cfg: LoadConfig) -> concurrent.futures.Future:
        return self.call(lambda: self.model.load(cfg))

    def activate(self) -> concurrent.futures.Future:
        return self.call(lambda: self.model.activate())

    def release(self) -> concurrent.futures.Future:
        return self.call(lambda: self.model.release())

    def enqueue(
        self, text: QueuedText, policy: str, max_size: int, reject_when_full: bool = False
    ) -> int | None:
        """Queue a text; returns how many waiting texts were dropped (queue full, or interrupt), or None
        when not accepting (a deactivate won the race against this text). With reject_when_full, a full
        queue (queue policy) raises QueueFull instead of dropping the oldest text.

        policy: "queue" (at the end), "interrupt" (the current text and the queue are stopped: queue.policy
        interrupt), or "next" (a request's urgency interrupt: the current text is stopped, this one is
        spoken next, the queue waits after it)."""
        dropped: list[QueuedText] = []
        with self._cond:
            if not self._accepting or self._closing:
                return None
            if policy in ("interrupt", "next"):
                if policy == "interrupt":
                    dropped += self._take_queue("preempted")
                if self._current is not None:
                    self._current.stop("preempted")
            elif reject_when_full and len(self._queue) >= max_size:
                raise QueueFull(f"queue full ({len(self._queue)} waiting, queue.max_size={max_size})")
            if policy == "next":
                self._queue.appendleft(text)
            else:
                self._queue.append(text)
            while len(self._queue) > max_size:  # the oldest waiting text other than one put first
                oldest = self._queue[1] if policy == "next" else self._queue[0]
                self._queue.remove(oldest)
                oldest.stop("dropped")
                dropped.append(oldest)
            self._stats.dropped += len(dropped)
            self._cond.notify_all()
        self._tell_ended(dropped)
        return len(dropped)

    def stop(self, clear_queue: bool = True, reason: str = "stopped") -> tuple[bool, int, int]:
        """Cancel the current text (its utterance ends with a final chunk, its later segments are not spoken);
        returns (was speaking, queued texts cleared, later segments of the current text left unspoken).
        Cleared texts count as dropped."""
        cleared: list[QueuedText] = []
        unspoken = 0
        with self._cond:
            if clear_queue:
                cleared = self._take_queue(reason)
                self._stats.dropped += len(cleared)
            current = self._current
            if current is not None:
                current.stop(reason)
                unspoken = current.unspoken()
        self._tell_ended(cleared)
        return current is not None, len(cleared), unspoken

    def cancel(self, text: QueuedText, reason: str) -> None:
        """Cancel one text: out of the queue (ended at once), or, being spoken, stopped within a chunk."""
        with self._cond:
            text.stop(reason)
            waiting = text in self._queue
            if waiting:
                self._queue.remove(text)
        if waiting:
            self._tell_ended([text])

    def _take_queue(self, reason: str) -> list[QueuedText]:  # with the lock held
        taken = list(self._queue)
        self._queue.clear()
        for text in taken:
            text.stop(reason)
        return taken

    def _tell_ended(self, texts: list[QueuedText], outcome: str = "", error: str = "") -> None:
        """Tell the observers of texts that are done with (without the lock: observers call into ROS)."""
        for text in texts:
            if text.observer is not None:
                try:
                    text.observer.ended(outcome or text.stop_reason or "stopped", error)
                except Exception:  # noqa: BLE001 - an observer must not take the worker down
                    self._log.error("text observer failed: " + traceback.format_exc())

    def waiting(self) -> int:
        """Texts waiting in the queue (not counting the one being spoken)."""
        with self._cond:
            return len(self._queue)

    def set_accepting(self, accepting: bool) -> None:
        with self._cond:
            self._accepting = accepting
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no utterance is being synthesised (its final chunk has been published)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def snapshot(self) -> WorkerStats:
        with self._cond:
            return self._stats.copy(queue_depth=len(self._queue), speaking=self._current is not None)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop everything, release the engine on the worker thread, end the thread; True once it ended.
        A running task (model load, capture and warm-up: minutes on a first compile) cannot be interrupted,
        so close() does not wait for one: its future fails with WorkerClosed at once, so no transition waits
        on it, and False is returned (the process may exit; the thread is a daemon). Waiting tasks are
        cancelled."""
        self.stop(reason="shutdown")
        with self._cond:
            self._closing = True
            running = self._task_future
            self._cond.notify_all()
        if running is not None:
            _settle(running, None, WorkerClosed("the node is shutting down"))
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not (self._accepting and self._queue) and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
                if self._tasks:
                    fn, future = self._tasks.popleft()
                    text = None
                    self._task_future = future
                else:
                    text = self._queue.popleft()
                    self._current = text
            if text is None:
                if future.set_running_or_notify_cancel():
                    try:
                        result, error = fn(), None
                    except BaseException as exc:  # noqa: BLE001 - handed to the waiting transition
                        result, error = None, exc
                    _settle(future, result, error)
                with self._cond:
                    self._task_future = None
                continue
            error = ""
            try:
                for segment in text.segments:
                    with self._cond:  # stop() reads it under the lock
                        if text.cancel.is_set():
                            break
                        text.started += 1
                    error = self._speak(segment, text) or error
            except Exception as exc:  # noqa: BLE001 - e.g. publishing after the ROS context is gone; keep going
                error = f"{type(exc).__name__}: {exc}"
                self._log.error("publishing an utterance failed: " + traceback.format_exc())
            finally:
                with self._cond:
                    self._current = None
                    idle = not (self._accepting and self._queue)
                    self._cond.notify_all()
            if text.cancel.is_set():
                self._tell_ended([text])
            else:
                self._tell_ended([text], "error" if error else "done", error)
            if idle and self._speaking:
                self._speaking = False
                try:
                    self._sink.speaking(False)
                except Exception:  # noqa: BLE001
                    self._log.error("publishing speaking=false failed: " + traceback.format_exc())
        try:
            self._log.info(f"worker stopped: {self.model.release()}")
        except Exception:  # noqa: BLE001 - shutting down; report and go on
            self._log.error("release at shutdown failed: " + traceback.format_exc())
        with self._cond:
            for _, future in self._tasks:
                future.cancel()
            left = self._take_queue("shutdown")
        self._tell_ended(left)

    def _speak(self, segment: Segment, queued: QueuedText) -> str:
        """Speak one segment as one utterance, count it; returns its error text ("" unless it failed)."""
        utterance_id = self._next_utterance_id
        self._next_utterance_id += 1
        record, published = utterance.speak(
            self.model, self._sink, self._log, utterance_id, segment, queued, self._speaking_started
        )
        with self._cond:
            self._stats.add_utterance(record, queued.cancel.is_set(), published)
        return record["error"] if record["stopped_by"] == "error" else ""

    def _speaking_started(self) -> None:
        if not self._speaking:
            self._speaking = True
            self._sink.speaking(True)
