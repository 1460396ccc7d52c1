"""Text in: a tts/text message, a tts/request message (or a say goal's text) -> a QueuedText in the worker's
queue, or a counted refusal. Runs on executor threads; only cheap work (cleaning, splitting, resolving a
request's voice by name, the queue's lock).

A request (TtsRequest, a say goal, a text stream's first chunk) may name a voice, a language, an instruct and
an urgency ("" for each: the default voice, its own language and instruct, queue.policy); `route` turns them
into the voice's request fields and the worker's queue policy, or a ValueError naming what is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from std_msgs.msg import String

from qwen3_tts_ros.engine.voice_book import VoiceBook, VoiceChoice
from qwen3_tts_ros.msg import TtsRequest
from qwen3_tts_ros.node import params as P
from qwen3_tts_ros.node.counted_log import CountedWarnings
from qwen3_tts_ros.node.settings import utterance_settings
from qwen3_tts_ros.node.text import clean_text, split_sentences
from qwen3_tts_ros.node.worker import SynthesisWorker
from qwen3_tts_ros.node.worker_types import QueuedText

LOG_THROTTLE_S = 5.0
EMPTY = "empty text"
# A request's urgency -> the worker's queue policy (worker.enqueue): "interrupt" stops the current text and
# is spoken next, leaving the queue as it is; "" follows queue.policy.
URGENCY_POLICY = {"queue": "queue", "interrupt": "next"}


class TextInput:
    """`refusal()` says why no text is accepted now ("" while active)."""

    def __init__(self, node, worker: SynthesisWorker, refusal: Callable[[], str]):
        self._node = node
        self._worker = worker
        self._voices: VoiceBook = worker.model.voices
        self._log = node.get_logger()
        self.refusal = refusal
        self._lock = threading.Lock()
        # rejected: refused while not active or too long (too_long counts the latter); empty: nothing to say;
        # request_rejected: a request (tts/request, say goal, text stream) whose voice, language, instruct or
        # urgency was refused.
        self._counters = dict(received=0, empty=0, rejected=0, too_long=0, request_rejected=0)
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

    def route(self, voice: str, language: str, instruct: str, urgency: str) -> tuple[dict | None, str]:
        """A request's voice fields (None: the default voice) and queue policy; ValueError (counted as
        request_rejected) names what is refused."""
        try:
            if urgency and urgency not in URGENCY_POLICY:
                raise ValueError(f"urgency must be '', 'queue' or 'interrupt', got {urgency!r}")
            choice = VoiceChoice(voice, language, instruct)
            fields = None if choice == VoiceChoice() else self._voices.resolve(choice)
        except ValueError:
            self.count("request_rejected")
            raise
        return fields, URGENCY_POLICY.get(urgency) or self.queue_policy()[0]

    def on_request(self, msg: TtsRequest) -> None:
        """The tts/request subscription's callback: a text with its voice, language, instruct, urgency."""
        voice, policy = None, ""
        if not self.refusal():  # else on_text counts and logs the refusal
            try:
                voice, policy = self.route(msg.voice, msg.language, msg.instruct, msg.urgency)
            except ValueError as exc:
                self.count("received")
                self._log.warning(f"request rejected: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
                return
        self.on_text(msg, voice, policy)

    def on_text(self, msg: String | TtsRequest, voice: dict | None = None, policy: str = "") -> None:
        """The tts/text subscription's callback (and a request's, once routed)."""
        received_at = time.monotonic()
        self.count("received")
        refusal = self.refusal()
        if refusal:
            self.count("rejected")
            self.warnings.add(f"{{n}} text(s) rejected: {escape(refusal)}")
            return
        queued, reason = self.prepare(msg.data if isinstance(msg, String) else msg.text, received_at)
        if queued is None:
            if reason == EMPTY:
                self.count("empty")
                self._log.warning("empty text ignored", throttle_duration_sec=LOG_THROTTLE_S)
            else:
                self.count("rejected")
                self.count("too_long")
                self._log.warning(reason, throttle_duration_sec=LOG_THROTTLE_S)
            return
        queued.voice = voice
        if self.enqueue(queued, policy) is None:
            self.count("rejected")

    def enqueue(self, queued: QueuedText, policy: str = "") -> int | None:
        """Queue under `policy` ("": the current queue.policy) (tts/text, tts/request, text streams);
        worker.enqueue's result: how many waiting texts that dropped, or None when the worker refused it
        (a deactivate won the race)."""
        queue_policy, max_size = self.queue_policy()
        policy = policy or queue_policy
        dropped = self._worker.enqueue(queued, policy, max_size)
        if dropped:
            self.warnings.add(f"{policy}: dropped {{n}} waiting text(s)", dropped)
        return dropped


def escape(text: str) -> str:
    """`text` as literal text of a CountedWarnings template."""
    return text.replace("{", "{{").replace("}", "}}")
