"""Split incoming text into utterance segments at sentence boundaries.

Each segment becomes one utterance; they play back to back, so the first audio of a long text only waits for
its first sentence. Very short pieces ("Hi.") are merged into the next one: a one-word utterance costs a full
prefill for little audio.
"""
from __future__ import annotations

import re

# A sentence ends at . ! ? ; … followed by white space, or at CJK full-width punctuation (no space needed).
_BOUNDARY = re.compile(r"(?<=[.!?;\u2026])\s+|(?<=[\u3002\uff01\uff1f\uff1b])")
MIN_SEGMENT_CHARS = 12


def split_sentences(text: str, min_chars: int = MIN_SEGMENT_CHARS) -> list[str]:
    pieces = [p.strip() for p in _BOUNDARY.split(text.strip())]
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
