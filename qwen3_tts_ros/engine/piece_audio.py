"""The audio of a streamed request (core.py `SpeechEngine.stream`): the frames of its pieces one after the
other, and the decode of a chunk of them with each piece's own streaming decoder."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from .audio.codec import StreamingDecoder
from .types import StreamStats


class PieceAudio:
    """The frames of a streamed request's pieces, one after the other, and the decode of a chunk of them.

    Each piece of a split text is its own utterance for the talker, so it gets its own decoder (as
    synthesize() decodes each piece on its own); a chunk may span two pieces. The decoders take the engine's
    codec state in turn, each at its first frame (after the previous piece's last one)."""

    def __init__(self, engine, pieces, sampling, cancel, stats: StreamStats, streamed=None):
        """pieces: whole-text requests, or a StreamedText's pieces (`streamed`)."""
        self.engine, self.pieces, self.cancel, self.stats = engine, pieces, cancel, stats
        self.sampling, self.streamed = sampling, streamed
        self.side_stream = engine.decode_cuda_stream
        self.decoders: list[StreamingDecoder] = []
        self.piece_of_frame: list[int] = []  # index into decoders, per frame handed out
        self.decoded = 0  # frames decoded so far

    def frames(self) -> Iterator[torch.Tensor]:
        engine, side, stats = self.engine, self.side_stream, self.stats
        for piece in self.pieces:
            piece_stats = StreamStats()
            prefill, piece_frames = engine._piece_frames(piece, self.sampling, self.cancel, piece_stats, side)
            if prefill is None:  # cancelled while waiting for the piece's first text
                stats.stopped_by = "cancelled"
                return
            if side is not None:
                # The prefix (voice-clone reference codes) was put on the device on the main stream.
                # Nothing of this piece is launched yet, so waiting for all of that stream waits for
                # no frames; the prefix's memory is not reused before the side stream read it.
                side.wait_stream(torch.cuda.current_stream(engine.device))
                if prefill.ref_code is not None:
                    prefill.ref_code.record_stream(side)
            self.decoders.append(StreamingDecoder(engine.codec, prefix=prefill.ref_code))
            try:
                for frame in piece_frames:
                    if frame is None:  # a wait for text follows: let the chunker flush
                        yield None
                        continue
                    stats.frames += 1
                    stats.frame_ms.append(piece_stats.frame_ms[-1])
                    self.piece_of_frame.append(len(self.decoders) - 1)
                    if self.streamed is not None:
                        self.streamed.audio_started = True
                    yield frame
            finally:
                piece_frames.close()  # at once, not when collected: the FrameGenerator is free again
                stats.prefill_ms += piece_stats.prefill_ms
                stats.stopped_by = piece_stats.stopped_by or stats.stopped_by
                if self.streamed is None:
                    stats.text_tokens += piece_stats.text_tokens
            if self.cancel.is_set():
                return

    def decode(self, chunk_frames: list[torch.Tensor]) -> np.ndarray:
        side = self.side_stream
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            codes = torch.stack(chunk_frames)  # where the frames were handed out, as the codec reads them
        owners = self.piece_of_frame[self.decoded : self.decoded + len(codes)]
        self.decoded += len(codes)
        wavs, begin = [], 0
        for end in range(1, len(codes) + 1):
            if end == len(codes) or owners[end] != owners[begin]:
                wavs.append(self.decoders[owners[begin]].decode(codes[begin:end]))
                begin = end
        return np.concatenate(wavs)
