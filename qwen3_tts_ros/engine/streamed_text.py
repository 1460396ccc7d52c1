"""Text that arrives in pieces, spoken as it comes: the TextFeed's pieces -> committed tokens -> text rows.

In qwen-tts's streaming-text layout the prompt holds the text's first token (voice clone ICL: the text the
reference codes align against, prompt_text_tokens) and generated frame t reads text row t (prefill.py).
So a stream's utterance starts as soon as those tokens are committed (IncrementalTokenizer: a token is
committed only when later text cannot change it), and frame t is launched only once row t is known or the
text has ended (FrameGenerator, `more_text`): it never runs ahead on a guessed padding row. With greedy
decoding the frames are then those of the same text given whole (test/engine/test_api_text_pieces.py).

A stream longer than max_seq_len can hold continues in a new piece (its own prompt and utterance for the
talker, as long whole texts are split): once a piece holds half its token budget (the budget of
SpeechEngine.text_token_budget), it ends at the next sentence end; at the whole budget it ends where the
text has reached. A piece whose model said EOS before its text ended takes the rest of that text with it
unspoken, as qwen-tts would for the whole text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import torch

from .frame.prefill import (
    Prefill,
    assistant_text,
    build_prefill,
    end_of_text_row,
    prompt_text_tokens,
    text_rows,
)
from .text_feed import TextFeed
from .text_split import SENTENCE_END
from .text_tokens import IncrementalTokenizer
from .types import SpeechRequest, StreamStats

POLL_S = 0.02  # how often a wait for text looks at the cancel event


class StreamedText:
    """One request's text arriving through `feed`, cut into pieces that each fit max_seq_len."""

    def __init__(  # fmt: skip
        self, engine, request: SpeechRequest, feed: TextFeed, cancel: threading.Event, stats: StreamStats,
        start: float,
    ):
        """start: time.perf_counter() of the request (stats.first_text_s counts from it)."""
        self.engine, self.request, self.feed, self.cancel, self.stats = engine, request, feed, cancel, stats
        self.start = start
        self.max_tokens = engine.text_token_budget(request)
        self.sentence_tokens = max(1, self.max_tokens // 2)
        self.buffer = ""  # received, not yet given to a piece
        self.ended = False  # the feed has ended: everything it had is in buffer or in pieces
        self.error: BaseException | None = None  # the text source's, raised once its text was spoken
        self.received = 0  # characters
        self.audio_started = False  # a frame was handed out: waits for text from now on are stalls

    def receive(self, timeout: float) -> None:
        """Take what the feed has, waiting up to `timeout` s while it has nothing new."""
        if self.ended:
            return
        try:
            text, self.ended = self.feed.take(timeout)
        except Exception as exc:  # noqa: BLE001 - the text source's error: speak what came, then raise it
            text, self.ended, self.error = "", True, exc
        self.buffer += text
        self.received += len(text)
        self.stats.text_length = self.received
        if self.feed.first_piece_at is not None and not self.stats.first_text_s:
            self.stats.first_text_s = max(self.feed.first_piece_at - self.start, 1e-9)

    def pieces(self) -> Iterator[StreamPiece]:
        """The pieces in order; a later piece starts once it has text (its leading whitespace dropped)."""
        index = 0
        while not self.cancel.is_set():
            if index > 0:
                waited = self._wait(lambda: self.buffer.strip() or self.ended)
                self.buffer = self.buffer.lstrip()
                if not self.buffer or self.cancel.is_set():
                    break
                if waited is not None:
                    self._stalled(waited)
            piece = StreamPiece(self)
            yield piece
            # Its frames are done. Text still routed to it (the model said EOS first) goes with it.
            piece._wait_for(piece.is_finished)
            self.stats.text_tokens += piece.tokens
            index += 1
            if self.ended and not self.buffer.strip():
                break
        if self.error is not None:
            raise self.error

    def _wait(self, ready) -> float | None:
        """Receive until ready() or cancel; -> seconds waited, None if ready at once."""
        if ready():
            return None
        start = time.perf_counter()
        while not ready() and not self.cancel.is_set():
            self.receive(POLL_S)
        return time.perf_counter() - start

    def _stalled(self, seconds: float) -> None:
        if self.audio_started:
            self.stats.text_stalls += 1
            self.stats.text_wait_ms += seconds * 1000


class StreamPiece:
    """One piece of a streamed text: one utterance for the talker, fed its text rows as they are known."""

    def __init__(self, text: StreamedText):
        self.stream = text
        self.engine = text.engine
        self.tokenizer = IncrementalTokenizer(self.engine.processor.tokenizer)
        self.ids: list[int] = []  # committed text tokens
        self.rows_given = 0  # of ids, in the prompt or handed to the frame generator
        self.finished = False  # takes no more text: every token is in ids
        self.eos_given = False

    @property
    def tokens(self) -> int:
        return len(self.ids)

    def is_finished(self) -> bool:
        return self.finished

    def _route(self) -> None:
        """Move text from the stream's buffer into this piece, up to where the piece must end: past half the
        budget, the next sentence end; at the whole budget, where the text is. Text that cannot take the
        piece past the limit in force (a token is at least one byte) goes in at once, else one character
        at a time, so the limit is seen where it is reached."""
        stream = self.stream
        while not self.finished and stream.buffer and self.tokens < stream.max_tokens:
            limit, upto, resume = stream.sentence_tokens, len(stream.buffer), None
            if self.tokens >= stream.sentence_tokens:
                limit = stream.max_tokens
                # The character before the buffer decides a sentence end at its start (lookbehind).
                before = self.tokenizer.text[-1:]
                end = SENTENCE_END.search(before + stream.buffer, len(before))
                if end is not None:
                    upto, resume = end.start() - len(before), end.end() - len(before)
            take = stream.buffer[:upto]
            if len((self.tokenizer.text + take).encode()) >= limit:
                take = take[:1]
            if take:
                self.ids += self.tokenizer.feed(take)
            if resume is not None and len(take) == upto:  # the sentence end: this piece is complete
                stream.buffer = stream.buffer[resume:]
                self._finish()
                return
            stream.buffer = stream.buffer[len(take) :]
        if not self.finished and (self.tokens >= stream.max_tokens or (stream.ended and not stream.buffer)):
            self._finish()

    def _finish(self) -> None:
        self.ids += self.tokenizer.finish()
        self.finished = True

    def _wait_for(self, ready) -> float | None:
        stream = self.stream

        def routed():
            self._route()
            return ready()

        return stream._wait(routed)

    def prefill(self) -> Prefill | None:
        """The piece's prompt once its first tokens are known (None if cancelled first)."""
        request = self.stream.request
        need = prompt_text_tokens(self.engine.processor, request)
        self.stream.receive(0.0)
        self._wait_for(lambda: self.tokens >= need or self.finished)
        if self.stream.cancel.is_set():
            return None
        model, processor = self.engine.model, self.engine.processor
        if self.finished:  # the whole text is known: exactly as a whole text
            self.rows_given = len(self.ids)
            self.eos_given = True
            return build_prefill(model, processor, replace(request, text=self.tokenizer.text))
        role = processor.tokenizer(assistant_text(self.tokenizer.text))["input_ids"][:3]
        self.rows_given = len(self.ids)
        return build_prefill(model, processor, request, known_ids=role + self.ids)

    def take_rows(self, block: bool) -> tuple[torch.Tensor | None, bool]:
        """-> (the text rows known since the last call, or None; whether the text has ended, in which case
        the rows end with tts_eos). block: wait for a row (or the end, or cancel)."""
        stream = self.stream
        stream.receive(0.0)
        self._route()
        if block:  # the generator asks only when the next frame has no text row: a stall, however short
            waited = self._wait_for(lambda: self.tokens > self.rows_given or self.finished)
            stream._stalled(waited or 0.0)
        new = self.ids[self.rows_given :]
        self.rows_given = len(self.ids)
        rows = [text_rows(self.engine.model, new)] if new else []
        ended = self.finished
        if ended and not self.eos_given:
            rows.append(end_of_text_row(self.engine.model))
            self.eos_given = True
        return (torch.cat(rows) if rows else None), ended

