"""The synthesis worker: one thread that owns the engine and does ALL torch/CUDA work.

Model loading (configure), CUDA-graph capture and warm-up (activate), generation, decoding and release
(cleanup) run on this thread only, so a CUDA-graph capture never sees another thread's CUDA work and torch
never runs on an executor thread. Executor callbacks only call the cheap, lock-protected methods here
(enqueue, stop, snapshot) and wait on futures for transitions. The worker publishes chunks itself through
the `Sink` it was given (rclpy publishers are thread-safe), which keeps time to first audio free of executor
hand-offs."""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from qwen3_tts_ros.engine.config import open_engine
from qwen3_tts_ros.engine.errors import EngineConfigError, EngineOutOfMemory, ModelLoadError
from qwen3_tts_ros.engine.types import SAMPLE_RATE, SpeechRequest
from qwen3_tts_ros.engine.voice import (
    VoiceSettings,
    VoiceSettingsError,
    check_ref_audio,
    voice_request_fields,
)
from qwen3_tts_ros.node.pcm import PcmEncoder
from qwen3_tts_ros.node.worker_stats import WorkerStats, percentile
from qwen3_tts_ros.node.worker_types import (  # the node imports them from here too
    ConfigError,
    LoadConfig,
    Logger,
    ModelReleased,
    QueuedText,
    QueueFull,
    Sink,
    UtteranceSettings,
    WorkerClosed,
)

WARMUP_FRAMES = 8


def _settle(future: concurrent.futures.Future, result: Any, error: BaseException | None) -> None:
    """Complete a task's future unless close() has already failed it."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


def stopped_by(error: str, interrupted: bool, stats) -> str:
    """Why an utterance ended: "eos", "max_new_tokens", "max_seq_len" (the engine's), "stopped" (stop service,
    interrupt, deactivate, a cancelled goal, shutdown), "error"."""
    if error:
        return "error"
    if interrupted:
        return "stopped"
    return stats.stopped_by if stats is not None else ""


class SynthesisWorker:
    def __init__(self, sink: Sink, logger: Logger):
        self._sink = sink
        self._log = logger
        self._cond = threading.Condition()
        self._tasks: collections.deque[tuple[Callable[[], Any], concurrent.futures.Future]] = (
            collections.deque()
        )
        self._queue: collections.deque[QueuedText] = collections.deque()
        self._accepting = False  # texts are taken from the queue only while active
        self._current: QueuedText | None = None
        self._closing = False
        self._task_future: concurrent.futures.Future | None = None  # the task running now, if any
        self._speaking = False
        self._next_utterance_id = 0
        # loaded state (worker thread only)
        self._engine = None
        self._cfg: LoadConfig | None = None
        self._request_fields: dict[str, Any] = {}
        self._encoder: PcmEncoder | None = None
        self._captured = False
        # statistics (written by the worker under the lock, read by the diagnostics timer)
        self._stats = WorkerStats()  # written by the worker under the lock, read through snapshot()
        self._thread = threading.Thread(target=self._run, name="qwen3_tts_worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called from executor threads
    def call(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Run `fn` on the worker thread (before any waiting utterance)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                future.set_exception(RuntimeError("worker closed"))
                return future
            self._tasks.append((fn, future))
            self._cond.notify_all()
        return future

    def load(self, cfg: LoadConfig) -> concurrent.futures.Future:
        return self.call(lambda: self._load(cfg))

    def activate(self) -> concurrent.futures.Future:
        return self.call(self._activate)

    def release(self) -> concurrent.futures.Future:
        return self.call(self._release)

    def enqueue(
        self, text: QueuedText, policy: str, max_size: int, reject_when_full: bool = False
    ) -> int | None:
        """Queue a text; returns how many waiting texts were dropped (queue full, or interrupt), or None
        when not accepting (a deactivate won the race against this text). With reject_when_full, a full
        queue (queue policy) raises QueueFull instead of dropping the oldest text."""
        dropped: list[QueuedText] = []
        with self._cond:
            if not self._accepting or self._closing:
                return None
            if policy == "interrupt":
                dropped += self._take_queue("preempted")
                if self._current is not None:
                    self._current.stop("preempted")
            elif reject_when_full and len(self._queue) >= max_size:
                raise QueueFull(f"queue full ({len(self._queue)} waiting, queue.max_size={max_size})")
            self._queue.append(text)
            while len(self._queue) > max_size:
                oldest = self._queue.popleft()
                oldest.stop("dropped")
                dropped.append(oldest)
            self._stats.dropped += len(dropped)
            self._cond.notify_all()
        self._tell_ended(dropped)
        return len(dropped)

    def stop(self, clear_queue: bool = True, reason: str = "stopped") -> tuple[bool, int]:
        """Cancel the current text (its utterance ends with a final chunk, its later segments are not spoken);
        returns (was speaking, cleared). Cleared texts count as dropped."""
        cleared: list[QueuedText] = []
        with self._cond:
            if clear_queue:
                cleared = self._take_queue(reason)
                self._stats.dropped += len(cleared)
            current = self._current
            if current is not None:
                current.stop(reason)
        self._tell_ended(cleared)
        return current is not None, len(cleared)

    def cancel(self, text: QueuedText, reason: str) -> None:
        """Cancel one text: out of the queue (ended at once), or, being spoken, stopped within a chunk."""
        with self._cond:
            text.stop(reason)
            waiting = text in self._queue
            if waiting:
                self._queue.remove(text)
        if waiting:
            self._tell_ended([text])

    def _take_queue(self, reason: str) -> list[QueuedText]:  # with the lock held
        taken = list(self._queue)
        self._queue.clear()
        for text in taken:
            text.stop(reason)
        return taken

    def _tell_ended(self, texts: list[QueuedText], outcome: str = "", error: str = "") -> None:
        """Tell the observers of texts that are done with (without the lock: observers call into ROS)."""
        for text in texts:
            if text.observer is not None:
                try:
                    text.observer.ended(outcome or text.stop_reason or "stopped", error)
                except Exception:  # noqa: BLE001 - an observer must not take the worker down
                    self._log.error("text observer failed: " + traceback.format_exc())

    def waiting(self) -> int:
        """Texts waiting in the queue (not counting the one being spoken)."""
        with self._cond:
            return len(self._queue)

    def set_accepting(self, accepting: bool) -> None:
        with self._cond:
            self._accepting = accepting
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no utterance is being synthesised (its final chunk has been published)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def snapshot(self) -> WorkerStats:
        with self._cond:
            return self._stats.copy(queue_depth=len(self._queue), speaking=self._current is not None)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop everything, release the engine on the worker thread, end the thread; True once it ended.
        A running task (model load, capture and warm-up: minutes on a first compile) cannot be interrupted,
        so close() does not wait for one: its future fails with WorkerClosed at once, so no transition waits
        on it, and False is returned (the process may exit; the thread is a daemon). Waiting tasks are
        cancelled."""
        self.stop(reason="shutdown")
        with self._cond:
            self._closing = True
            running = self._task_future
            self._cond.notify_all()
        if running is not None:
            _settle(running, None, WorkerClosed("the node is shutting down"))
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._tasks and not (self._accepting and self._queue) and not self._closing:
                    self._cond.wait()
                if self._closing:
                    break
                if self._tasks:
                    fn, future = self._tasks.popleft()
                    text = None
                    self._task_future = future
                else:
                    text = self._queue.popleft()
                    self._current = text
            if text is None:
                if future.set_running_or_notify_cancel():
                    try:
                        result, error = fn(), None
                    except BaseException as exc:  # noqa: BLE001 - handed to the waiting transition
                        result, error = None, exc
                    _settle(future, result, error)
                with self._cond:
                    self._task_future = None
                continue
            error = ""
            try:
                for segment in text.segments:
                    if text.cancel.is_set():
                        break
                    error = self._speak(segment, text) or error
            except Exception as exc:  # noqa: BLE001 - e.g. publishing after the ROS context is gone; keep going
                error = f"{type(exc).__name__}: {exc}"
                self._log.error("publishing an utterance failed: " + traceback.format_exc())
            finally:
                with self._cond:
                    self._current = None
                    idle = not (self._accepting and self._queue)
                    self._cond.notify_all()
            if text.cancel.is_set():
                self._tell_ended([text])
            else:
                self._tell_ended([text], "error" if error else "done", error)
            if idle and self._speaking:
                self._speaking = False
                try:
                    self._sink.speaking(False)
                except Exception:  # noqa: BLE001
                    self._log.error("publishing speaking=false failed: " + traceback.format_exc())
        try:
            self._log.info(f"worker stopped: {self._release()}")
        except Exception:  # noqa: BLE001 - shutting down; report and go on
            self._log.error("release at shutdown failed: " + traceback.format_exc())
        with self._cond:
            for _, future in self._tasks:
                future.cancel()
            left = self._take_queue("shutdown")
        self._tell_ended(left)

    def _load(self, cfg: LoadConfig) -> str:
        self._release()
        try:
            check_ref_audio(VoiceSettings.of(cfg), allow_download=cfg.engine.allow_download)
        except VoiceSettingsError as exc:
            raise ConfigError(str(exc)) from exc
        self._log.info(
            f"loading weights from {cfg.engine.model or 'the built-in demo checkpoint'} "
            f"(max_seq_len {cfg.engine.max_seq_len})"
        )
        t0 = time.monotonic()
        try:
            engine = open_engine(cfg.engine)
        except (EngineConfigError, ModelLoadError) as exc:  # their messages name the setting / the model
            raise ConfigError(str(exc)) from exc
        model, device = engine.source, str(engine.device)
        dtype_name = str(engine.dtype).removeprefix("torch.")
        self._engine = engine
        self._log.info(
            f"weights loaded in {time.monotonic() - t0:.1f} s ({device} {dtype_name}); preparing the voice"
        )
        try:
            self._request_fields = self._voice(engine, cfg, self._log)
            self._check_room_for_text(engine, cfg)
        except BaseException:
            self._release()
            raise
        self._cfg = cfg
        self._encoder = PcmEncoder(cfg.pcm_format, SAMPLE_RATE, cfg.sample_rate)
        self._captured = False
        with self._cond:
            st = self._stats
            st.device, st.dtype, st.model, st.mode = device, dtype_name, model, self._request_fields["mode"]
            st.cuda_graphs_captured, st.capture_time_s = False, 0.0
        self._record_memory(engine)
        return (
            f"loaded {model} ({engine.tts_model_type}, mode {self._request_fields['mode']}) on {device} "
            f"{dtype_name} in {time.monotonic() - t0:.1f} s"
        )

    def _check_room_for_text(self, engine, cfg: LoadConfig) -> None:
        """Refuse at configure a max_seq_len that the voice's prompt (instruct, voice-clone reference) leaves
        no room for text in; otherwise every utterance would fail. stream() validates without generating."""
        request = self._request("Hello.", cfg.warmup_settings)
        try:
            engine.stream(request).close()
        except ValueError as exc:
            max_seq_len = cfg.engine.max_seq_len
            raise ConfigError(f"max_seq_len={max_seq_len} is too small for this voice: {exc}") from exc

    @staticmethod
    def _voice(engine, cfg: LoadConfig, log: Logger) -> dict[str, Any]:
        """Validate the voice settings against the loaded model; build (and cache) the voice prompt."""
        try:
            return voice_request_fields(engine, VoiceSettings.of(cfg), warn=log.warning)
        except VoiceSettingsError as exc:
            raise ConfigError(str(exc)) from exc

    def _activate(self) -> str:
        if self._engine is None:
            raise ConfigError("not configured")
        try:
            return self._capture_and_warm_up()
        except EngineOutOfMemory as exc:
            released = self._release()  # a failed capture holds memory; the model must be loaded again anyway
            raise ModelReleased(
                f"{exc}; {released}. Free GPU memory or lower max_seq_len, then configure again."
            ) from exc

    def _capture_and_warm_up(self) -> str:
        engine = self._engine
        msg = "graphs kept from the previous activation"
        if not self._captured:
            self._log_capture_plan(engine)
            capture_s = float(engine.capture() or 0.0)
            self._captured = True
            graphs = bool(self._cfg.engine.use_cuda_graphs and engine.device.type == "cuda")
            with self._cond:
                self._stats.capture_time_s, self._stats.cuda_graphs_captured = capture_s, graphs
            msg = f"{'CUDA graphs captured' if graphs else 'no CUDA graphs (CPU)'} in {capture_s:.2f} s"
            if self._cfg.warmup_text:
                # The configured voice and chunking, a few frames only (a random model may never say EOS).
                settings = self._cfg.warmup_settings
                options = self._stream_kwargs(settings, threading.Event())
                self._log.info(f"warm-up: {WARMUP_FRAMES - 1} frames of {self._cfg.warmup_text!r}")
                seconds = engine.warmup(
                    self._cfg.warmup_text,
                    max_frames=WARMUP_FRAMES - 1,
                    request=self._request(self._cfg.warmup_text, settings),
                    first_chunk_frames=options["first_chunk_frames"],
                    chunk_frames=options["chunk_frames"],
                    pcm_format=options["pcm_format"],
                )
                msg += f", warm-up {seconds:.2f} s"
        self._record_memory(engine)
        return msg

    def _log_capture_plan(self, engine) -> None:
        cfg = self._cfg.engine
        if not (cfg.use_cuda_graphs and engine.device.type == "cuda"):
            return  # nothing to capture on a CPU (or with use_cuda_graphs false)
        from qwen3_tts_ros.engine.decode.compile import compile_available

        buckets = [b for b in cfg.prefill_buckets if b > 0]
        what = "the decode step" + (f" and {len(buckets)} prefill buckets {buckets}" if buckets else "")
        if cfg.compile and compile_available(engine.device):
            what += "; torch.compile first (a minute or more on a first run, seconds from the kernel cache)"
        self._log.info(f"capturing CUDA graphs: {what}")

    def _release(self) -> str:
        if self._engine is None:
            return "nothing loaded"
        engine, self._engine = self._engine, None
        self._request_fields, self._encoder, self._cfg, self._captured = {}, None, None, False
        engine.close()  # gives the memory back (engine/core.py)
        msg = "model released"
        if engine.device.type == "cuda":
            msg += (
                f"; GPU memory allocated {engine.memory_allocated_bytes() / 2**20:.1f} MiB "
                f"(before configure {engine.memory_baseline_bytes / 2**20:.1f} MiB)"
            )
        self._record_memory(engine)
        with self._cond:
            self._stats.cuda_graphs_captured, self._stats.capture_time_s = False, 0.0
        return msg

    def _record_memory(self, engine) -> None:
        mb = engine.memory_allocated_bytes() / 2**20
        with self._cond:
            self._stats.gpu_memory_allocated_mb = mb

    def _request(self, text: str, settings: UtteranceSettings) -> SpeechRequest:
        sampling = self._engine.sampling_params(**settings.sampling)
        return SpeechRequest(text=text, sampling=sampling, **self._request_fields)

    def _stream_kwargs(self, s: UtteranceSettings, cancel: threading.Event) -> dict[str, Any]:
        resampling = self._cfg.sample_rate != SAMPLE_RATE
        pcm_format = "float32" if (resampling or self._cfg.pcm_format == "float32") else "int16"
        return dict(
            first_chunk_frames=s.first_chunk_frames,
            chunk_frames=s.chunk_frames,
            pcm_format=pcm_format,
            cancel=cancel,
        )

    def _speak(self, segment: str, queued: QueuedText) -> str:
        """Speak one segment as one utterance; returns its error text ("" unless it failed)."""
        utterance_id = self._next_utterance_id
        self._next_utterance_id += 1
        t_start = time.monotonic()
        encoder = self._encoder
        encoder.start()
        sequence, frames_done, out_samples = 0, 0, 0
        first_published = None
        final_sent = False
        error = ""
        stats = None
        try:
            stream = self._engine.stream(
                self._request(segment, queued.settings), **self._stream_kwargs(queued.settings, queued.cancel)
            )
            stats = stream.stats
            for chunk in stream:
                data = encoder.encode(chunk.pcm, chunk.is_final)
                if not self._speaking:
                    self._speaking = True
                    self._sink.speaking(True)
                self._sink.chunk(
                    utterance_id, sequence, chunk.frame_start, chunk.frame_count, chunk.is_final, data
                )
                if first_published is None:
                    first_published = time.monotonic()
                sequence += 1
                frames_done = chunk.frame_start + chunk.frame_count
                samples = len(data) // (2 if encoder.pcm_format == "int16" else 4)
                out_samples += samples
                if queued.observer is not None:
                    queued.observer.chunk(utterance_id, chunk.frame_count, samples / self._cfg.sample_rate)
                if chunk.is_final:
                    final_sent = True
                    break
        except Exception as exc:  # noqa: BLE001 - one utterance failing must not kill the worker
            error = f"{type(exc).__name__}: {exc}"
            self._log.error(f"synthesis of utterance {utterance_id} failed: {traceback.format_exc()}")
        if not final_sent:  # stopped or failed before the engine's final chunk: close the stream for players
            self._sink.chunk(utterance_id, sequence, frames_done, 0, True, b"")
            if queued.observer is not None:
                queued.observer.chunk(utterance_id, 0, 0.0)
        t_end = time.monotonic()
        interrupted = (
            queued.cancel.is_set() or bool(error) or (stats is not None and stats.stopped_by == "cancelled")
        )
        frame_ms = list(stats.frame_ms) if stats is not None else []
        synthesis_s = t_end - t_start
        audio_s = out_samples / self._cfg.sample_rate
        record = dict(
            utterance_id=utterance_id,
            text_length=len(segment),
            queue_wait_ms=(t_start - queued.received_at) * 1e3,
            prefill_ms=stats.prefill_ms if stats is not None else 0.0,
            time_to_first_audio_ms=((first_published - t_start) * 1e3) if first_published else 0.0,
            end_to_end_first_audio_ms=(
                ((first_published - queued.received_at) * 1e3) if first_published else 0.0
            ),
            frames=frames_done,
            audio_seconds=audio_s,
            synthesis_seconds=synthesis_s,
            real_time_factor=audio_s / synthesis_s if synthesis_s > 0 else 0.0,
            frame_ms_mean=float(np.mean(frame_ms)) if frame_ms else 0.0,
            frame_ms_p50=percentile(frame_ms, 50),
            frame_ms_p95=percentile(frame_ms, 95),
            frame_ms_max=float(max(frame_ms)) if frame_ms else 0.0,
            decode_ms_total=stats.decode_ms_total if stats is not None else 0.0,
            interrupted=interrupted,
            error=error or ("stopped" if interrupted else ""),
            stopped_by=stopped_by(error, interrupted, stats),
        )
        self._sink.latency(record)
        self._log_utterance(record, queued.stop_reason)
        self._record_memory(self._engine)
        with self._cond:
            st = self._stats
            st.utterances += 1
            st.interrupted += int(interrupted and not error)
            st.errors += int(bool(error))
            st.last_failed = bool(error) and not queued.cancel.is_set()
            if error:
                st.last_error = error
            if first_published is not None:
                st.ttfa_ms.append(record["time_to_first_audio_ms"])
            if frames_done:
                st.last_rtf = record["real_time_factor"]
                st.last_ms_per_frame = record["frame_ms_mean"]
        return error

    def _log_utterance(self, record: dict[str, Any], stop_reason: str) -> None:
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
            limit = self._cfg.engine.max_seq_len
            self._log.warning(f"{line} (cut: prompt + frames reached max_seq_len={limit})")
        elif record["stopped_by"] == "max_new_tokens":
            self._log.warning(f"{line} (cut: sampling.max_new_tokens reached)")
        else:
            self._log.info(line)
