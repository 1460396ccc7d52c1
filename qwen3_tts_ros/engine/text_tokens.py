"""Incremental tokenisation of text that arrives in pieces (placeholder: commits at the end only)."""

from __future__ import annotations

from .decode.prefill import assistant_text


class IncrementalTokenizer:
    """The text tokens of a text given in pieces, committed only when later text cannot change them.

    This version commits nothing before `finish()` (exact, not early)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._text = ""
        self._committed: list[int] = []

    @property
    def text(self) -> str:
        return self._text

    @property
    def committed(self) -> list[int]:
        return list(self._committed)

    def feed(self, piece: str) -> list[int]:
        self._text += piece
        return []

    def finish(self) -> list[int]:
        ids = self.tokenizer(assistant_text(self._text))["input_ids"][3:-5]
        new = ids[len(self._committed) :]
        self._committed.extend(new)
        return new
