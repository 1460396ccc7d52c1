"""Streaming audio: frames -> PCM chunks as soon as they are decoded, optionally produced ahead of the reader.

Chunking: the first chunk holds `first_chunk_frames` frames (1 frame = 80 ms of audio), later chunks
`chunk_frames`; for text given in pieces, a chunk also ends when generation has to wait for text, so a
player gets what there is. Every chunk has exactly frame_count * 1920 samples. The stream always ends
with exactly one chunk with is_final=True; it holds the remaining frames, or is EMPTY (frame_count 0)
when the frames ran out on a chunk boundary or the stream was cancelled. On cancel, frames generated but
not yet decoded are dropped and the empty final chunk follows at once; `stats.stopped_by` is "cancelled".

prefetch_chunks > 0 runs the production (CUDA work: generation and decoding) on a background thread that
fills a queue of at most prefetch_chunks chunks, so a slow reader does not stall generation until the
queue is full. Call `capture()` / `warmup()` on your own thread first, or the CUDA graphs get captured
on that producer thread. With prefetch_chunks == 0 (what the ROS node uses) everything runs on the
reading thread, lazily, one chunk per `next()`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..types import SAMPLE_RATE, SAMPLES_PER_FRAME, PcmChunk, Rule, StreamStats
from .pcm import PCM_FORMATS, to_pcm

CHUNK_FRAMES_RULE = Rule(int, 1)
# The stream's chunking unless a call says otherwise (the warm-up included, so that it decodes the chunk
# sizes a default stream does): the first chunk alone for the time to first audio, then 4 frames (320 ms).
FIRST_CHUNK_FRAMES = 1
CHUNK_FRAMES = 4


def check_chunking(first_chunk_frames: int, chunk_frames: int, pcm_format: str) -> None:
    """ValueError naming the first streaming setting that cannot be used."""
    CHUNK_FRAMES_RULE.check("first_chunk_frames", first_chunk_frames)
    CHUNK_FRAMES_RULE.check("chunk_frames", chunk_frames)
    if pcm_format not in PCM_FORMATS:
        raise ValueError(f"pcm_format must be one of {PCM_FORMATS}, got {pcm_format!r}")


def chunk_stream(
    frames: Iterator[torch.Tensor | None],
    decode: Callable[[list[torch.Tensor]], np.ndarray],
    *,
    first_chunk_frames: int,
    chunk_frames: int,
    pcm_format: str,
    stats: StreamStats,
    start: float,
    cancel: threading.Event | None,
) -> Iterator[PcmChunk]:
    """Group `frames` into chunks, decode each with `decode(its n (16,) frames) -> n * 1920 samples`.

    The frames go to `decode` as they came, unstacked: it stacks them on the stream it decodes on. A None
    among the frames (generation is about to wait for text) ends the chunk early, if it has frames.
    """
    pending: list[torch.Tensor] = []
    emitted = 0
    generated_at = 0.0

    def make_chunk(is_final: bool) -> PcmChunk:
        nonlocal emitted, pending
        decode_start = time.perf_counter()
        wav = decode(pending) if pending else np.zeros(0, dtype=np.float32)
        now = time.perf_counter()
        stats.decode_ms_total += (now - decode_start) * 1000
        if len(wav) != len(pending) * SAMPLES_PER_FRAME:
            raise RuntimeError(f"decoder gave {len(wav)} samples for {len(pending)} frames")
        chunk = PcmChunk(
            pcm=to_pcm(wav, pcm_format),
            sample_rate=SAMPLE_RATE,
            frame_start=emitted,
            frame_count=len(pending),
            is_final=is_final,
            generated_at_s=generated_at,
            decoded_at_s=now - start,
        )
        if emitted == 0 and pending and not stats.time_to_first_audio_ms:
            stats.time_to_first_audio_ms = (now - start) * 1000
        emitted += len(pending)
        stats.audio_seconds = emitted * SAMPLES_PER_FRAME / SAMPLE_RATE
        pending = []
        return chunk

    try:
        for frame in frames:
            if frame is None:  # generation waits for text (streamed_text.py): hand out what there is
                if pending and not (cancel is not None and cancel.is_set()):
                    yield make_chunk(is_final=False)
                continue
            pending.append(frame)
            generated_at = time.perf_counter() - start
            if len(pending) >= (first_chunk_frames if emitted == 0 else chunk_frames):
                if cancel is not None and cancel.is_set():
                    break
                yield make_chunk(is_final=False)
    finally:
        # Stopped early (cancel, or the reader closed this generator): end generation now, which frees the
        # FrameGenerator for the next stream, rather than whenever the frames' generator is collected.
        close_frames = getattr(frames, "close", None)
        if close_frames is not None:
            close_frames()
    if cancel is not None and cancel.is_set():
        pending = []
        stats.stopped_by = "cancelled"
    final = make_chunk(is_final=True)
    stats.total_s = time.perf_counter() - start
    yield final


_END = object()


def _put_until_closed(out: queue.Queue, item, closed: threading.Event) -> bool:
    while not closed.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(chunks: Iterator[PcmChunk], out: queue.Queue, closed: threading.Event, cancel: threading.Event):
    """Prefetch thread body. It does not reference the AudioStream, so a dropped stream can be collected."""
    try:
        for chunk in chunks:
            if not _put_until_closed(out, chunk, closed):
                cancel.set()  # reader gone: let generation stop at its next frame
                break
        else:
            _put_until_closed(out, _END, closed)
    except BaseException as exc:  # handed to the reader, re-raised there
        _put_until_closed(out, exc, closed)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # ends generation (frees the frame generator) if it stopped early
            close()


class AudioStream:
    """Iterable of PcmChunk for one utterance; `stats` (StreamStats) is complete after the final chunk.

    Iterate it once. `cancel()` stops generation at the next frame. `close()` ends the stream early and
    frees the engine for the next one; it runs when iteration ends, on `with engine.stream(...) as s:` exit,
    and (without joining) when an un-iterated stream is garbage-collected.
    """

    def __init__(
        self,
        chunks: Iterator[PcmChunk],
        stats: StreamStats,
        cancel: threading.Event,
        *,
        prefetch_chunks: int = 0,
    ):
        if prefetch_chunks < 0:
            raise ValueError(f"prefetch_chunks must be >= 0, got {prefetch_chunks}")
        self.stats = stats
        self._cancel = cancel
        self._chunks = chunks
        self._queue: queue.Queue | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if prefetch_chunks > 0:
            self._queue = queue.Queue(maxsize=prefetch_chunks)
            self._thread = threading.Thread(
                target=_produce,
                args=(chunks, self._queue, self._closed, cancel),
                name="qwen3-tts-stream",
                daemon=True,
            )
            self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[PcmChunk]:
        if self._queue is None:
            try:
                yield from self._chunks
            finally:
                self.close()
            return
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self, *, wait: bool = True) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._thread is None:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            return
        if self._thread.is_alive():
            self._cancel.set()
            if wait and threading.current_thread() is not self._thread:
                self._thread.join()

    def __del__(self):
        self.close(wait=False)
