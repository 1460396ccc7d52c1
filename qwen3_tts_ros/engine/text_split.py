"""Split text that is too long for one generation into pieces, at the most natural boundary that works.

Order of preference: sentence ends (. ! ? ; and their CJK forms, newlines), then clause marks (commas,
colons, CJK enumeration comma), then whitespace, and only for a single word that alone exceeds the budget
a hard split inside it. Pieces are packed greedily up to the budget. Nothing is ever dropped: joining the
pieces gives back the text (apart from the whitespace at the piece boundaries).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# A sentence ends at . ! ? ; … followed by white space, at CJK full-width punctuation (no space needed)
# or at a line break; so "3.14" or "e.g.x" stay whole. Also the node's utterance boundary (node/text.py).
SENTENCE_END = re.compile(r"(?<=[.!?;\u2026])\s+|(?<=[\u3002\uff01\uff1f\uff1b])|\n+")
_CLAUSE_END = re.compile(r"(?<=[,:])\s+|(?<=[，、：])")
_WHITESPACE = re.compile(r"\s+")


def _split_keep(text: str, pattern: re.Pattern) -> list[str]:
    parts, start = [], 0
    for match in pattern.finditer(text):
        end = match.end()
        if end > start and text[start:end].strip():
            parts.append(text[start:end])
            start = end
    if text[start:].strip():
        parts.append(text[start:])
    return parts


def _hard_split(word: str, max_len: int, length: Callable[[str], int]) -> list[str]:
    pieces = []
    while word:
        take = len(word)
        while take > 1 and length(word[:take]) > max_len:
            take = max(1, min(take - 1, take * max_len // max(length(word[:take]), 1)))
        pieces.append(word[:take])
        word = word[take:]
    return pieces


def _pack(parts: list[str], max_len: int, length: Callable[[str], int]) -> list[str]:
    pieces: list[str] = []
    current = ""
    for part in parts:
        candidate = current + part
        if current and length(candidate.strip()) > max_len:
            pieces.append(current)
            current = part
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return pieces


def split_text(text: str, max_len: int, length: Callable[[str], int] = len) -> list[str]:
    """Split `text` into stripped pieces with `length(piece) <= max_len` each (e.g. length = token count).

    A piece can exceed max_len only if a single character does (impossible for a character count).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    text = text.strip()
    if not text:
        return []
    if length(text) <= max_len:
        return [text]
    levels = (SENTENCE_END, _CLAUSE_END, _WHITESPACE)

    def split(segment: str, level: int) -> list[str]:
        if length(segment.strip()) <= max_len:
            return [segment]
        if level == len(levels):  # one over-long word; keep its trailing space so words stay apart
            pieces = _hard_split(segment.rstrip(), max_len, length)
            return pieces[:-1] + [pieces[-1] + segment[len(segment.rstrip()) :]]
        parts = _split_keep(segment, levels[level])
        if len(parts) <= 1:
            return split(segment, level + 1)
        fitted = [piece for part in parts for piece in split(part, level + 1)]
        return _pack(fitted, max_len, length)

    return [piece.strip() for piece in split(text, 0) if piece.strip()]
