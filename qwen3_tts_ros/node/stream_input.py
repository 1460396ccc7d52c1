"""Text streams in: TextChunk messages on tts/text_stream -> stream_assembly.TextStreams (the assembly rules)
-> one QueuedText per stream whose one segment is an engine TextFeed, so the worker speaks the stream as one
utterance while its chunks are still arriving. Runs on executor threads (the chunk callback, in the same
mutually exclusive group as tts/text so that both are taken in arrival order; the timeout check); the worker
thread only reads the feed and tells the stream's observer when the utterance is over."""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from qwen3_tts_ros.engine.text_feed import TextFeed
from qwen3_tts_ros.msg import TextChunk
from qwen3_tts_ros.node import params as P
from qwen3_tts_ros.node.settings import utterance_settings
from qwen3_tts_ros.node.stream_assembly import StreamLimits, TextStreams
from qwen3_tts_ros.node.text_input import LOG_THROTTLE_S, TextInput, escape
from qwen3_tts_ros.node.worker_types import QueuedText

T = TypeVar("T")
CHECK_PERIOD_S = 0.05  # how often silent streams and gaps are checked against text_stream.timeout_s
# Routed first chunks whose stream has not opened yet (held chunks, or nothing to say so far); the oldest
# are forgotten beyond this (their streams then speak in the default voice under queue.policy).
MAX_PENDING_ROUTES = 1024


class StreamFeed(TextFeed):
    """The engine's TextFeed for one stream's utterance, which also knows how much of what was put the engine
    has not taken yet (text_stream.max_buffered_chars) and whether its utterance was stopped."""

    def __init__(self, cancel: threading.Event):
        super().__init__()
        self._cancel = cancel
        self._count_lock = threading.Lock()
        self._unread = 0
        self._put = 0

    def put(self, piece: str) -> None:
        super().put(piece)
        with self._count_lock:
            self._unread += len(piece)
            self._put += len(piece)

    def chars_put(self) -> int:
        with self._count_lock:
            return self._put

    def take(self, timeout: float | None = 0.0) -> tuple[str, bool]:
        text, ended = super().take(timeout)
        with self._count_lock:
            self._unread -= len(text)
        return text, ended

    def unread_chars(self) -> int:
        with self._count_lock:
            return self._unread

    def cancelled(self) -> bool:
        return self._cancel.is_set()


class _StreamObserver:
    """The worker's TextObserver of a stream's queued text: when the utterance is over (spoken, stopped,
    dropped), a stream still assembling ends and the rest of its text is dropped."""

    def __init__(self, streams: TextStreams, stream_id: str):
        self._streams, self._stream_id = streams, stream_id

    def chunk(self, utterance_id: int, frames: int, audio_seconds: float) -> None:
        pass

    def ended(self, outcome: str, error: str) -> None:
        self._streams.stopped(self._stream_id, outcome)


class StreamInput:
    def __init__(self, node, text_input: TextInput):
        self._node = node
        self._text = text_input
        self._log = node.get_logger()
        self._warn_lock = threading.Lock()
        self._warned_at: dict[str, float] = {}
        self.streams = TextStreams(self._open_text, self._warn)
        # stream_id -> (voice fields, queue policy) from its first chunk, until the stream opens
        self._routes: collections.OrderedDict[str, tuple[dict | None, str]] = collections.OrderedDict()

    def limits(self) -> StreamLimits:
        get = self._node.get_parameter
        return StreamLimits(
            timeout_s=get("text_stream.timeout_s").value,
            max_open_streams=get("text_stream.max_open_streams").value,
            max_buffered_chars=get("text_stream.max_buffered_chars").value,
        )

    def on_chunk(self, msg: TextChunk) -> None:
        """The tts/text_stream subscription's callback."""
        now = time.monotonic()
        refusal = self._text.refusal()
        if refusal:
            self.streams.refuse(msg.stream_id, msg.sequence)
            self._text.warnings.add(f"{{n}} text stream chunk(s) rejected: {escape(refusal)}")
            return
        if msg.sequence == 0 and (msg.voice or msg.language or msg.instruct or msg.urgency):
            try:
                route = self._text.route(msg.voice, msg.language, msg.instruct, msg.urgency)
            except ValueError as exc:
                self.streams.refuse(msg.stream_id, msg.sequence, "rejected_request")
                self._log.warning(f"text stream rejected: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
                return
            with self.streams.lock:
                self._routes[msg.stream_id] = route
                while len(self._routes) > MAX_PENDING_ROUTES:
                    self._routes.popitem(last=False)
        self.streams.receive(msg.stream_id, msg.sequence, msg.text, msg.final, now, self.limits())

    def check_timeouts(self) -> None:
        """The timer's callback: end the streams whose silence or gap has lasted text_stream.timeout_s."""
        self.streams.expire(time.monotonic(), self.limits())

    def stop_all(self, reason: str, stop_utterance: Callable[[], T] = lambda: None) -> tuple[T, int]:
        """stop_utterance() (the worker's stop), then end every stream still assembling (stop service,
        deactivate, exit), as one step for the timeout check (which would otherwise end a stopped utterance's
        stream first); -> (what stop_utterance returned, how many streams ended). In that order: a stream's
        text ending first would let its utterance end as if its text were complete."""
        with self.streams.lock:
            stopped = stop_utterance()
            return stopped, self.streams.stop_all(reason)

    def _open_text(self, stream_id: str, received_at: float) -> StreamFeed | None:
        """Queue the utterance of a stream that has its first words (called by TextStreams)."""
        settings = utterance_settings(P.read_all(self._node))
        voice, policy = self._routes.pop(stream_id, (None, ""))  # (called with the streams' lock held)
        queued = QueuedText(segments=[], settings=settings, received_at=received_at, voice=voice)
        feed = StreamFeed(queued.cancel)
        queued.segments.append(feed)
        queued.observer = _StreamObserver(self.streams, stream_id)
        return feed if self._text.enqueue(queued, policy) is not None else None

    def _warn(self, kind: str, message: str) -> None:
        """At most one line per LOG_THROTTLE_S for each kind, so that a flood of one kind hides no other."""
        now = time.monotonic()
        with self._warn_lock:
            if now - self._warned_at.get(kind, -math.inf) < LOG_THROTTLE_S:
                return
            self._warned_at[kind] = now
        self._log.warning(message)
