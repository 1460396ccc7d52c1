"""The text track's rows as they become known, for a text still arriving (streamed_text.py) or all at once."""

from __future__ import annotations

from typing import Protocol

import torch

from .state import FrameState


class MoreText(Protocol):
    """The rest of a text still arriving (streamed_text.py's StreamPiece)."""

    def take_rows(self, block: bool) -> tuple[torch.Tensor | None, bool]:
        """-> ((n, H) text rows known since the last call, or None; whether the text has ended (the rows
        then end with tts_eos)). block: wait until a row or the end is known (or the stream is cancelled)."""


class TextRows:
    """Writes the rows of `more` into the state's text track as they come; frame t may be launched once row t
    is there (or the text has ended)."""

    def __init__(self, state: FrameState, more: MoreText | None):
        self.state, self.more = state, more
        self.known = 0  # rows written into the text track
        self.ended = more is None

    def start(self, rows_in_prefill: int) -> None:
        self.known = rows_in_prefill

    def covers(self, replay: int) -> bool:
        """Every frame of `replay` has its text row (or the text has ended)."""
        return self.ended or self.known >= (replay + 1) * self.state.frames_per_replay

    def wait(self, replay: int, cancel) -> None:
        """Take rows until `replay` is covered (or the text ends, or `cancel` is set)."""
        while not self.covers(replay) and not (cancel is not None and cancel.is_set()):
            self.take(block=True)

    def take(self, block: bool) -> None:
        if self.ended:
            return
        rows, self.ended = self.more.take_rows(block)
        s = self.state
        if rows is not None:
            rows = rows.to(device=s.device, dtype=s.dtype)[: s.max_seq_len - self.known]
            s.text_track[self.known : self.known + rows.shape[0]].copy_(rows)
            self.known += rows.shape[0]
        if self.ended:  # frame t reads row min(t, text_len): the pad row from here on
            s.text_track[self.known].copy_(s.tts_pad)
            s.text_len.fill_(self.known)
