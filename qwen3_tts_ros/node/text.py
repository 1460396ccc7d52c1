"""Clean incoming text and split it into utterance segments at sentence boundaries.

Each segment becomes one utterance; they play back to back, so the first audio of a long text only waits for
its first sentence. Very short pieces ("Hi.") are merged into the next one: a one-word utterance costs a full
prefill for little audio.
"""
from __future__ import annotations

import unicodedata

from qwen3_tts_ros.engine.text_split import SENTENCE_END

MIN_SEGMENT_CHARS = 12


def clean_text(text: str) -> str:
    """A whole text as it is spoken: control characters replaced or removed (below), stripped."""
    return remove_control_characters(text).strip()


def remove_control_characters(text: str) -> str:
    """Control characters (NUL, BEL, ESC, ... C0/C1) carry no speech and would reach the tokenizer as bytes:
    white-space ones (tab, newline, ...) become spaces, the others are removed. Format characters (zero-width
    joiner in emoji sequences, ...) are kept. Character by character, so a text cleaned in pieces equals the
    text cleaned whole (stream_assembly.py)."""
    if text.isprintable():
        return text
    return "".join(" " if c.isspace() else c for c in text if c.isspace() or unicodedata.category(c) != "Cc")


def split_sentences(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[str]:
    pieces = [p.strip() for p in SENTENCE_END.split(text.strip())]
    segments: list[str] = []
    pending = ""
    for piece in pieces:
        if not piece:
            continue
        pending = f"{pending} {piece}" if pending else piece
        if len(pending) >= min_chars:
            segments.append(pending)
            pending = ""
    if pending:
        if segments and len(pending) < min_chars:
            segments[-1] = f"{segments[-1]} {pending}"
        else:
            segments.append(pending)
    return segments
