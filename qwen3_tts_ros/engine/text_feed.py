"""Text that arrives in pieces (an LLM's token stream) on its way to the generation thread.

`TextFeed` is a thread-safe queue of str pieces with an end: producers `put` pieces and `close` it; the
engine takes what has arrived without blocking while it has frames to launch, and blocks only when the
next frame needs text that has not come yet. Iterating a TextFeed (any consumer) blocks the same way.

Any other iterable of str given as a request's text is drained into a TextFeed by a daemon reader thread
(`feed_from`), so a generator that blocks on its LLM never blocks the generation thread's launches. An
exception raised by that iterable closes the feed with it; the engine re-raises it after what was spoken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator


class TextFeed:
    """Pieces of one text, in order, and whether the text has ended."""

    def __init__(self):
        self._pieces: list[str] = []
        self._closed = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self.first_piece_at: float | None = None  # time.perf_counter() of the first non-empty piece

    def put(self, piece: str) -> None:
        """Append a piece (ValueError once closed, TypeError unless a str)."""
        if not isinstance(piece, str):
            raise TypeError(f"text pieces must be str, got {type(piece).__name__}")
        with self._changed:
            if self._closed:
                raise ValueError("this TextFeed was closed: the text has ended")
            if piece and self.first_piece_at is None:
                self.first_piece_at = time.perf_counter()
            self._pieces.append(piece)
            self._changed.notify_all()

    def close(self, error: BaseException | None = None) -> None:
        """End the text (idempotent). `error`: why the text source failed; take() raises it."""
        with self._changed:
            if not self._closed:
                self._closed, self._error = True, error
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, timeout: float | None = 0.0) -> tuple[str, bool]:
        """-> (the pieces that arrived since the last take, joined; whether the text has ended).

        Waits up to `timeout` seconds (None: without limit) while nothing arrived and the text goes on.
        Raises the source's error once everything before it was taken."""
        with self._changed:
            if not self._pieces and not self._closed and timeout != 0.0:
                self._changed.wait_for(lambda: self._pieces or self._closed, timeout)
            text, self._pieces = "".join(self._pieces), []
            if self._closed and self._error is not None:
                if not text:
                    raise self._error
                return text, False  # the next take raises it
            return text, self._closed

    def __iter__(self) -> Iterator[str]:
        while True:
            text, ended = self.take(timeout=None)
            if text:
                yield text
            if ended:
                return


def feed_from(text: Iterable[str]) -> TextFeed:
    """`text` itself if it is a TextFeed, else a TextFeed filled from it by a daemon thread."""
    if isinstance(text, TextFeed):
        return text
    feed = TextFeed()
    pieces = iter(text)

    def drain() -> None:
        try:
            for piece in pieces:
                feed.put(piece)
        except BaseException as exc:  # handed to the generation thread through the feed
            feed.close(exc)
        else:
            feed.close()

    threading.Thread(target=drain, name="qwen3_tts_text_reader", daemon=True).start()
    return feed
