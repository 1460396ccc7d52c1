"""Text in: a tts/text message (or a say goal's text) -> a QueuedText in the worker's queue, or a counted
refusal. Runs on executor threads; only cheap work (cleaning, splitting, the queue's lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from std_msgs.msg import String

from qwen3_tts_ros.node import params as P
from qwen3_tts_ros.node.counted_log import CountedWarnings
from qwen3_tts_ros.node.settings import utterance_settings
from qwen3_tts_ros.node.text import clean_text, split_sentences
from qwen3_tts_ros.node.worker import SynthesisWorker
from qwen3_tts_ros.node.worker_types import QueuedText

LOG_THROTTLE_S = 5.0
EMPTY = "empty text"


class TextInput:
    """`refusal()` says why no text is accepted now ("" while active)."""

    def __init__(self, node, worker: SynthesisWorker, refusal: Callable[[], str]):
        self._node = node
        self._worker = worker
        self._log = node.get_logger()
        self.refusal = refusal
        self._lock = threading.Lock()
        # rejected: refused while not active or too long (too_long counts the latter); empty: nothing to say.
        self._counters = dict(received=0, empty=0, rejected=0, too_long=0)
        self.warnings = CountedWarnings(self._log)  # rejections and drops, logged with their true counts

    def count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def queue_policy(self) -> tuple[str, int]:
        node = self._node
        return node.get_parameter("queue.policy").value, node.get_parameter("queue.max_size").value

    def prepare(self, raw: str, received_at: float) -> tuple[QueuedText | None, str]:
        """A text (tts/text message or say goal) as the worker queues it, with the current text settings; or
        (None, why it is refused: EMPTY or too long)."""
        text = clean_text(raw)
        if not text:
            return None, EMPTY
        v = P.read_all(self._node)
        if len(text) > v["text.max_chars"]:
            limit = v["text.max_chars"]
            return None, f"text of {len(text)} characters rejected: longer than text.max_chars={limit}"
        segments = split_sentences(text) if v["text.split_sentences"] else [text]
        settings = utterance_settings(v)
        return QueuedText(segments=segments, settings=settings, received_at=received_at), ""

    def on_text(self, msg: String) -> None:
        """The tts/text subscription's callback."""
        received_at = time.monotonic()
        self.count("received")
        refusal = self.refusal()
        if refusal:
            self.count("rejected")
            self.warnings.add(f"{{n}} text(s) rejected: {escape(refusal)}")
            return
        queued, reason = self.prepare(msg.data, received_at)
        if queued is None:
            if reason == EMPTY:
                self.count("empty")
                self._log.warning("empty text ignored", throttle_duration_sec=LOG_THROTTLE_S)
            else:
                self.count("rejected")
                self.count("too_long")
                self._log.warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
            return
        if self.enqueue(queued) is None:
            self.count("rejected")

    def enqueue(self, queued: QueuedText) -> int | None:
        """Queue under the current queue policy (tts/text, text streams); worker.enqueue's result: how many
        waiting texts that dropped, or None when the worker refused it (a deactivate won the race)."""
        policy, max_size = self.queue_policy()
        dropped = self._worker.enqueue(queued, policy, max_size)
        if dropped:
            self.warnings.add(f"{policy}: dropped {{n}} waiting text(s)", dropped)
        return dropped


def escape(text: str) -> str:
    """`text` as literal text of a CountedWarnings template."""
    return text.replace("{", "{{").replace("}", "}}")
