"""One utterance, on the worker thread: engine.stream() -> PCM -> AudioChunk messages through the Sink, always
ending with exactly one final chunk; then its UtteranceLatency record and one log line."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from qwen3_tts_ros.engine.stats import Summary
from qwen3_tts_ros.node.loaded_model import LoadedModel
from qwen3_tts_ros.node.worker_types import Logger, QueuedText, Segment, Sink


def stopped_by(error: str, interrupted: bool, stats) -> str:
    """Why an utterance ended: "eos", "max_new_tokens", "max_seq_len", "runaway" (the engine's), "stopped"
    (stop service, interrupt, deactivate, a cancelled goal, shutdown), "error"."""
    if error:
        return "error"
    if interrupted:
        return "stopped"
    return stats.stopped_by if stats is not None else ""


def speak(
    model: LoadedModel,
    sink: Sink,
    log: Logger,
    utterance_id: int,
    segment: Segment,
    queued: QueuedText,
    on_first_chunk: Callable[[], None],
) -> tuple[dict[str, Any], bool]:
    """Speak one segment of `queued` (a str, or a text stream's TextFeed) as utterance `utterance_id`;
    returns its latency record (already
    published and logged) and whether any audio was published. `on_first_chunk` runs before the first chunk
    is published."""
    t_start = time.monotonic()
    encoder = model.encoder
    encoder.start()
    sequence, frames_done, out_samples = 0, 0, 0
    first_published = None
    final_sent = False
    error = ""
    stats = None
    sample_rate = model.cfg.sample_rate
    try:
        stream = model.engine.stream(
            model.request(segment, queued.settings), **model.stream_kwargs(queued.settings, queued.cancel)
        )
        stats = stream.stats
        for chunk in stream:
            data = encoder.encode(chunk.pcm, chunk.is_final)
            if first_published is None:
                on_first_chunk()
            sink.chunk(utterance_id, sequence, chunk.frame_start, chunk.frame_count, chunk.is_final, data)
            if first_published is None:
                first_published = time.monotonic()
            sequence += 1
            frames_done = chunk.frame_start + chunk.frame_count
            samples = len(data) // (2 if encoder.pcm_format == "int16" else 4)
            out_samples += samples
            if queued.observer is not None:
                queued.observer.chunk(utterance_id, chunk.frame_count, samples / sample_rate)
            if chunk.is_final:
                final_sent = True
                break
    except Exception as exc:  # noqa: BLE001 - one utterance failing must not kill the worker
        error = f"{type(exc).__name__}: {exc}"
        log.error(f"synthesis of utterance {utterance_id} failed: {traceback.format_exc()}")
    if not final_sent:  # stopped or failed before the engine's final chunk: close the stream for players
        sink.chunk(utterance_id, sequence, frames_done, 0, True, b"")
        if queued.observer is not None:
            queued.observer.chunk(utterance_id, 0, 0.0)
    t_end = time.monotonic()
    interrupted = (
        queued.cancel.is_set() or bool(error) or (stats is not None and stats.stopped_by == "cancelled")
    )
    frame_ms = Summary.of(stats.frame_ms if stats is not None else ())
    synthesis_s = t_end - t_start
    audio_s = out_samples / sample_rate
    ttfa_ms = ((first_published - t_start) * 1e3) if first_published else 0.0
    record = dict(
        utterance_id=utterance_id,
        text_length=len(segment) if isinstance(segment, str) else segment.chars_put(),
        queue_wait_ms=(t_start - queued.received_at) * 1e3,
        prefill_ms=stats.prefill_ms if stats is not None else 0.0,
        time_to_first_audio_ms=ttfa_ms,
        end_to_end_first_audio_ms=(
            ((first_published - queued.received_at) * 1e3) if first_published else 0.0
        ),
        # The engine's first_text_s: how long it waited for the first piece of a text stream (0: whole text).
        first_text_to_first_audio_ms=(
            max(0.0, ttfa_ms - 1e3 * stats.first_text_s) if first_published and stats else 0.0
        ),
        text_stalls=stats.text_stalls if stats is not None else 0,
        text_wait_ms=stats.text_wait_ms if stats is not None else 0.0,
        frames=frames_done,
        audio_seconds=audio_s,
        synthesis_seconds=synthesis_s,
        real_time_factor=audio_s / synthesis_s if synthesis_s > 0 else 0.0,
        frame_ms_mean=frame_ms.mean,
        frame_ms_p50=frame_ms.p50,
        frame_ms_p95=frame_ms.p95,
        frame_ms_max=frame_ms.max,
        decode_ms_total=stats.decode_ms_total if stats is not None else 0.0,
        interrupted=interrupted,
        error=error or ("stopped" if interrupted else ""),
        stopped_by=stopped_by(error, interrupted, stats),
    )
    sink.latency(record)
    log_utterance(log, record, queued.stop_reason, model.cfg.engine.max_seq_len)
    model.record_memory()
    return record, first_published is not None


def log_utterance(log: Logger, record: dict[str, Any], stop_reason: str, max_seq_len: int) -> None:
    """One line per utterance; a warning when the audio was cut by a length limit."""
    why = record["stopped_by"]
    if why == "stopped":
        why = f"stop ({stop_reason or 'stopped'})"
    elif why == "error":
        why = f"error ({record['error']})"
    line = (
        f"utterance {record['utterance_id']}: {record['audio_seconds']:.2f} s of audio, "
        f"{record['frames']} frames, ended by {why}; "
        f"first audio {record['time_to_first_audio_ms']:.0f} ms, "
        f"real-time factor {record['real_time_factor']:.2f}"
    )
    if record["stopped_by"] == "max_seq_len":
        log.warning(f"{line} (cut: prompt + frames reached max_seq_len={max_seq_len})")
    elif record["stopped_by"] == "max_new_tokens":
        log.warning(f"{line} (cut: sampling.max_new_tokens reached)")
    elif record["stopped_by"] == "runaway":
        log.warning(f"{line} (cut by the runaway guard: the model did not end it; runaway.* parameters)")
    else:
        log.info(line)
