"""Text streams: TextChunk messages (stream_id, sequence, text, final) -> one text per stream, in order,
handed piece by piece to the utterance that speaks it. ROS-free (the node's glue: stream_input.py);
thread-safe.

Rules (docs/NODE.md's "Speaking an LLM's output" says them to users):
- A stream opens with its first chunk and is spoken as ONE utterance. Sequences start at 0 and are
  contiguous; chunks that arrive early are held until the ones before them arrive, so the text is always
  handed on in sequence order.
- A duplicate (a sequence already received) is dropped and counted.
- A gap (a missing sequence while later chunks are held): the stream waits for the missing chunk up to
  `timeout_s` after the gap appeared; then the stream ends at the gap (what came before it is spoken), the
  held chunks are dropped, and the gap is counted and logged. Text after a gap is never spoken.
- A stream that receives no chunk for `timeout_s` ends as if its last chunk had been final (counted).
- A stream_id must be 1 to MAX_STREAM_ID_CHARS characters long (an empty one is a publisher's bug: all its
  streams would be one); other chunks are rejected and counted.
- Bounds: at most `max_open_streams` streams assemble at once (a chunk that would open one more is rejected,
  and so is the rest of its stream); a stream holds at most `max_buffered_chars` characters that its
  utterance has not taken yet (held chunks, and text waiting while the stream waits in the queue); the chunk
  that would exceed it is rejected and the stream ends before it. Rejections are counted by bound.
- A stream ended early (stop, deactivate, the interrupt policy, a queue overflow, or its utterance ending
  first, e.g. EOS or the runaway guard) drops the rest of its text: held chunks and every later chunk of it
  are dropped and counted. A stream_id that has ended is remembered (the last ENDED_MEMORY ones), so its late
  chunks are never spoken as the start of a new stream.
- Text cleaning is tts/text's (text.py), kept exact across pieces: control characters are replaced or removed
  per piece, leading white space of the stream is dropped, and white space is handed on only once text
  follows it (trailing white space at the end of the stream is dropped), so a stream's text is the text
  that tts/text would speak for the pieces joined. The utterance starts with the first piece that has
  something to say; a stream that ends with nothing to say is counted as empty and never queued.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Protocol

from qwen3_tts_ros.node.text import remove_control_characters

ENDED_MEMORY = 4096  # ended stream ids remembered (their late chunks dropped instead of opening a new stream)
MAX_STREAM_ID_CHARS = 256  # a longer stream_id is refused: ENDED_MEMORY of them must stay small

# Why a stream ended; each is one counter (COUNTERS) except "final" (counted as completed).
FINAL = "final"
TIMEOUT = "timeout"
GAP = "gap"
TOO_MUCH_TEXT = "max_buffered_chars"
OPEN_STREAMS = "max_open_streams"
BAD_ID = "stream_id"


class StreamText(Protocol):
    """Where a stream's text goes (the node: the utterance's engine TextFeed)."""

    def put(self, text: str) -> None: ...

    def close(self) -> None: ...

    def unread_chars(self) -> int:
        """Characters put and not yet taken by the utterance."""

    def cancelled(self) -> bool:
        """Its utterance was stopped (stop, deactivate, interrupt, dropped from the queue, ...)."""


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    timeout_s: float
    max_open_streams: int
    max_buffered_chars: int


COUNTERS = (
    "chunks",  # TextChunk messages received
    "started",  # streams opened
    "completed",  # streams whose final chunk was reached (all their text handed on)
    "timeouts",  # streams ended by silence (as if final)
    "gaps",  # streams ended at a missing chunk
    "duplicates",  # chunks dropped as already received
    "dropped",  # chunks dropped because their stream had ended (stopped, gap, rejected, utterance over)
    "stopped",  # streams ended early from outside (stop, deactivate, interrupt, queue overflow, ...)
    "empty",  # streams that ended with nothing to say
    "rejected_open_streams",  # chunks rejected by max_open_streams (each opening chunk, then the rest)
    "rejected_buffered_chars",  # chunks rejected by max_buffered_chars
    "rejected_inactive",  # chunks refused while the node was not active
    "rejected_request",  # chunks of a stream whose first chunk asked for a voice (language, ...) refused
    "rejected_stream_id",  # chunks whose stream_id is empty or longer than MAX_STREAM_ID_CHARS
)


@dataclasses.dataclass
class _Open:
    stream_id: str
    last_arrival: float
    next_sequence: int = 0
    held: dict[int, tuple[str, bool]] = dataclasses.field(default_factory=dict)  # sequence -> (text, final)
    held_chars: int = 0
    gap_since: float | None = None  # when the stream began waiting for next_sequence with chunks held
    pending_space: str = ""  # white space handed on only once text follows it
    text: StreamText | None = None  # from the first piece with something to say
    final_sequence: int | None = None
    ended: bool = False


class TextStreams:
    """open_text(stream_id, received_at) -> a StreamText for the stream's utterance (queued by the caller),
    or None when it cannot be queued (the stream then ends, rejected). It is called with this object's lock
    held, and may call back into it (stopped(), from a dropped text's observer): the lock is re-entrant.
    warn(kind, message) logs what a person waiting at the robot needs; kind is GAP, TIMEOUT, TOO_MUCH_TEXT,
    OPEN_STREAMS or BAD_ID (so that a flood of one kind, throttled, hides no other kind)."""

    def __init__(
        self,
        open_text: Callable[[str, float], StreamText | None],
        warn: Callable[[str, str], None],
    ):
        self._open_text = open_text
        self._warn = warn
        self.lock = threading.RLock()  # callers may hold it to make several calls one step
        self._open: dict[str, _Open] = {}
        # stream id -> (the sequence from which its chunks count as dropped, why it ended)
        self._ended: collections.OrderedDict[str, tuple[int, str]] = collections.OrderedDict()
        self._counters = dict.fromkeys(COUNTERS, 0)

    # ------------------------------------------------------------------ queries
    def counters(self) -> dict[str, int]:
        with self.lock:
            return dict(self._counters)

    def open_streams(self) -> int:
        with self.lock:
            return len(self._open)

    # ------------------------------------------------------------------ input
    def receive(
        self, stream_id: str, sequence: int, text: str, final: bool, now: float, limits: StreamLimits
    ) -> None:
        """One chunk, at time `now` (time.monotonic())."""
        with self.lock:
            self._counters["chunks"] += 1
            if not 0 < len(stream_id) <= MAX_STREAM_ID_CHARS:
                self._counters["rejected_stream_id"] += 1
                self._warn(
                    BAD_ID,
                    f"text stream chunk rejected: stream_id of {len(stream_id)} characters "
                    f"(1 to {MAX_STREAM_ID_CHARS})",
                )
                return
            if stream_id in self._ended:
                self._drop_late(stream_id, sequence)
                return
            stream = self._open.get(stream_id)
            if stream is not None and stream.text is not None and stream.text.cancelled():
                self._end(stream, "stopped")  # e.g. preempted; the worker tells stopped() a moment later
                self._drop_late(stream_id, sequence)
                return
            if stream is None:
                if len(self._open) >= limits.max_open_streams:
                    self._counters["rejected_open_streams"] += 1
                    self._warn(
                        OPEN_STREAMS,
                        f"text stream {stream_id!r} rejected: {len(self._open)} streams open "
                        f"(text_stream.max_open_streams={limits.max_open_streams})"
                    )
                    self._remember_ended(stream_id, 0, OPEN_STREAMS)
                    return
                stream = self._open[stream_id] = _Open(stream_id, now)
                self._counters["started"] += 1
            stream.last_arrival = now
            if sequence < stream.next_sequence or sequence in stream.held:
                self._counters["duplicates"] += 1
                return
            if stream.final_sequence is not None and sequence > stream.final_sequence:
                self._counters["dropped"] += 1  # after the stream's final chunk
                return
            text = remove_control_characters(text)
            buffered = stream.held_chars + len(stream.pending_space)
            buffered += stream.text.unread_chars() if stream.text is not None else 0
            if buffered + len(text) > limits.max_buffered_chars:
                self._counters["rejected_buffered_chars"] += 1
                self._warn(
                    TOO_MUCH_TEXT,
                    f"text stream {stream_id!r}: chunk {sequence} rejected, the stream would hold "
                    f"{buffered + len(text)} characters (text_stream.max_buffered_chars="
                    f"{limits.max_buffered_chars}); the stream ends before it"
                )
                self._end(stream, TOO_MUCH_TEXT)
                return
            if final:
                stream.final_sequence = sequence
            if sequence > stream.next_sequence:
                stream.held[sequence] = (text, final)
                stream.held_chars += len(text)
                if stream.gap_since is None:
                    stream.gap_since = now
                return
            self._hand_on(stream, text, final, now)
            while not stream.ended and stream.next_sequence in stream.held:  # chunks held behind this one
                held_text, held_final = stream.held.pop(stream.next_sequence)
                stream.held_chars -= len(held_text)
                self._hand_on(stream, held_text, held_final, now)
            stream.gap_since = now if stream.held else None  # a later gap waits from now

    def refuse(self, stream_id: str, sequence: int, counter: str = "rejected_inactive") -> None:
        """A chunk refused before assembly (node not active; a first chunk's request refused): counted under
        `counter`; its stream, if open, ends here (what it has so far is spoken), so that its later chunks
        are never spoken after the hole."""
        with self.lock:
            self._counters["chunks"] += 1
            self._counters[counter] += 1
            stream = self._open.get(stream_id)
            if stream is not None:
                self._end(stream, "refused")
            elif stream_id not in self._ended:
                self._remember_ended(stream_id, 0, "refused")

    # ------------------------------------------------------------------ time and outside events
    def expire(self, now: float, limits: StreamLimits) -> None:
        """End the streams whose gap or silence has lasted timeout_s (call it periodically)."""
        with self.lock:
            for stream in list(self._open.values()):
                if stream.text is not None and stream.text.cancelled():
                    self._end(stream, "stopped")
                elif stream.gap_since is not None and now - stream.gap_since >= limits.timeout_s:
                    held = sorted(stream.held)
                    self._warn(
                        GAP,
                        f"text stream {stream.stream_id!r}: chunk {stream.next_sequence} missing for "
                        f"{limits.timeout_s:g} s (text_stream.timeout_s); the stream ends there, "
                        f"{len(held)} later chunk(s) dropped ({held[0]}..{held[-1]})"
                    )
                    self._end(stream, GAP)
                elif now - stream.last_arrival >= limits.timeout_s:
                    self._warn(
                        TIMEOUT,
                        f"text stream {stream.stream_id!r}: no chunk for {limits.timeout_s:g} s "
                        f"(text_stream.timeout_s); ended as if final"
                    )
                    self._end(stream, TIMEOUT)

    def stopped(self, stream_id: str, reason: str) -> None:
        """The stream's utterance is over or was stopped (its text's observer): if the stream is still
        assembling, it ends and the rest of its text is dropped and counted."""
        with self.lock:
            stream = self._open.get(stream_id)
            if stream is not None:
                self._end(stream, reason)

    def stop_all(self, reason: str) -> int:
        """End every open stream (stop service, deactivate, shutdown); returns how many."""
        with self.lock:
            streams = list(self._open.values())
            for stream in streams:
                self._end(stream, reason)
            return len(streams)

    # ------------------------------------------------------------------ with the lock held
    def _hand_on(self, stream: _Open, text: str, final: bool, now: float) -> None:
        """The next chunk in sequence: its text to the utterance (opened by the first piece with something
        to say); the stream ends with its final chunk."""
        stream.next_sequence += 1
        if stream.text is None:
            text = text.lstrip()
        text = stream.pending_space + text
        body = text.rstrip()
        stream.pending_space = text[len(body) :]
        if body and stream.text is None:
            stream.text = self._open_text(stream.stream_id, now)
            if stream.text is None:  # not queued: the node stopped accepting text
                self._counters["rejected_inactive"] += 1
                self._end(stream, "refused")
                return
        if body:
            stream.text.put(body)
        if final:
            self._end(stream, FINAL)

    def _end(self, stream: _Open, reason: str) -> None:
        if stream.ended:
            return  # ended already (a callback from inside this end)
        stream.ended = True
        del self._open[stream.stream_id]
        dropped = len(stream.held)
        self._counters["dropped"] += dropped
        if reason == FINAL:
            self._counters["completed"] += 1
        elif reason == TIMEOUT:
            self._counters["timeouts"] += 1
        elif reason == GAP:
            self._counters["gaps"] += 1
        elif reason not in (TOO_MUCH_TEXT, "refused"):
            self._counters["stopped"] += 1
        if stream.text is None:
            if reason in (FINAL, TIMEOUT, GAP):
                self._counters["empty"] += 1
        else:
            stream.text.close()
        self._remember_ended(stream.stream_id, stream.next_sequence, reason)

    def _remember_ended(self, stream_id: str, next_sequence: int, reason: str) -> None:
        self._ended[stream_id] = (next_sequence, reason)
        self._ended.move_to_end(stream_id)
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    def _drop_late(self, stream_id: str, sequence: int) -> None:
        """A chunk of an ended stream: a duplicate of one it had, else dropped (or rejected, as the rest of a
        stream that max_open_streams rejected)."""
        next_sequence, reason = self._ended[stream_id]
        if sequence < next_sequence:
            self._counters["duplicates"] += 1
        elif reason == OPEN_STREAMS:
            self._counters["rejected_open_streams"] += 1
        else:
            self._counters["dropped"] += 1
