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
import dataclasses
import gc
import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from qwen3_tts_ros.engine.types import SAMPLE_RATE, SamplingParams, SpeechRequest
from qwen3_tts_ros.engine.voice_settings import (
    VoiceSettings,
    VoiceSettingsError,
    check_ref_audio,
    voice_request_fields,
)
from qwen3_tts_ros.home import keep_compiled_kernels
from qwen3_tts_ros.node.pcm import PcmEncoder
from qwen3_tts_ros.testing.demo_checkpoint import ensure_demo_checkpoint

TTFA_WINDOW = 200  # utterances kept for the p50/p95 of time to first audio
WARMUP_FRAMES = 8


class ConfigError(Exception):
    """A configuration the node cannot load; its message is the one log line naming the cause."""


class ModelReleased(ConfigError):
    """A transition failed in a way that cost the loaded model (CUDA out of memory): it was released, so the
    node must be configured again."""


class WorkerClosed(Exception):
    """The worker was closed (process exit) before this task could finish."""


def _settle(future: concurrent.futures.Future, result: Any, error: BaseException | None) -> None:
    """Complete a task's future unless close() has already failed it."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


class QueueFull(Exception):
    """enqueue(..., reject_when_full=True) found the queue full (queue policy): the text was not queued."""


class TextObserver(Protocol):
    """Told what becomes of one queued text (the say action's goals); called on the worker thread, or on the
    thread that dropped or cancelled the text, never with the worker's lock held."""

    def chunk(self, utterance_id: int, frames: int, audio_seconds: float) -> None:
        """A chunk of one of its utterances was published (frames and audio seconds of that chunk)."""

    def ended(self, outcome: str, error: str) -> None:
        """Once, when the text is done with: "done", "error" (error says why), or the reason it was stopped,
        dropped or cancelled (see QueuedText.stop_reason)."""


class Sink(Protocol):
    def chunk(
        self,
        utterance_id: int,
        sequence: int,
        frame_start: int,
        frame_count: int,
        is_final: bool,
        data: bytes,
    ) -> None: ...

    def speaking(self, value: bool) -> None: ...

    def latency(self, record: dict[str, Any]) -> None: ...


@dataclasses.dataclass
class UtteranceSettings:
    """Per-utterance parameters, snapshotted when the text arrives."""

    sampling: SamplingParams
    first_chunk_frames: int
    chunk_frames: int


@dataclasses.dataclass
class QueuedText:
    """One accepted text message. Its segments (sentences) are spoken back to back, one utterance (one
    utterance_id, one final chunk) each; the queue holds, drops and cancels whole texts, so a long text never
    pushes an earlier one out of the queue and is never left half-spoken with its beginning dropped."""

    segments: list[str]
    settings: UtteranceSettings
    received_at: float  # time.monotonic() when the text message arrived
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    observer: TextObserver | None = None
    # Why it was cancelled or dropped: "stopped" (~/stop), "preempted" (interrupt policy), "dropped" (queue
    # full), "deactivated", "shutdown", "cancelled" (its action goal was cancelled); the first reason wins.
    stop_reason: str = ""

    def stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self.cancel.set()


@dataclasses.dataclass
class LoadConfig:
    model: str
    allow_download: bool
    device: str
    dtype: str
    max_seq_len: int
    use_cuda_graphs: bool
    compile: bool  # torch.compile where available (CUDA with Triton)
    prefill_buckets: tuple[int, ...]  # (0,) or (): none
    mode: str
    language: str
    speaker: str
    instruct: str
    ref_audio: str
    ref_text: str
    x_vector_only: bool
    pcm_format: str
    sample_rate: int
    warmup_text: str
    warmup_settings: UtteranceSettings


def _is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out of memory anywhere in the exception chain (a capture that ran out of memory can surface as
    a later "capture invalidated" error whose context is the OutOfMemoryError)."""
    import torch

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.cuda.OutOfMemoryError) or "out of memory" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def stopped_by(error: str, interrupted: bool, stats) -> str:
    """Why an utterance ended: "eos", "max_new_tokens", "max_seq_len" (the engine's), "stopped" (stop service,
    interrupt, deactivate, a cancelled goal, shutdown), "error"."""
    if error:
        return "error"
    if interrupted:
        return "stopped"
    return stats.stopped_by if stats is not None else ""


def _percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


class Logger(Protocol):  # what the worker needs of an rclpy logger
    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...


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
        self._cuda_device = None
        self._baseline_bytes = 0
        # statistics (written by the worker under the lock, read by the diagnostics timer)
        self._stats: dict[str, Any] = dict(
            utterances=0,
            interrupted=0,
            errors=0,
            dropped=0,
            ttfa_ms=collections.deque(maxlen=TTFA_WINDOW),
            last_rtf=0.0,
            last_ms_per_frame=0.0,
            capture_time_s=0.0,
            cuda_graphs_captured=False,
            gpu_memory_allocated_mb=0.0,
            device="",
            dtype="",
            model="",
            mode="",
            last_error="",
            last_failed=False,
        )
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
            self._stats["dropped"] += len(dropped)
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
                self._stats["dropped"] += len(cleared)
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

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            s = dict(self._stats)
            ttfa = list(s.pop("ttfa_ms"))
            s.update(
                queue_depth=len(self._queue),
                speaking=self._current is not None,
                ttfa_p50_ms=_percentile(ttfa, 50),
                ttfa_p95_ms=_percentile(ttfa, 95),
                ttfa_last_ms=ttfa[-1] if ttfa else 0.0,
            )
        return s

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
        import torch

        from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
        from qwen3_tts_ros.engine.loading import resolve_device_dtype

        self._release()
        model = cfg.model
        if "://" in model:
            raise ConfigError(f"model must be a local directory or a hub id (org/name), not a URL: {model}")
        if not model:
            model = str(ensure_demo_checkpoint())
        elif not os.path.isdir(os.path.expanduser(model)):
            if model.startswith(("/", ".", "~")):
                raise ConfigError(f"model directory not found: {model}")
            # Otherwise a hub id: without allow_download the engine resolves it from the local hub cache only.
        else:
            model = os.path.expanduser(model)
        try:
            device, dtype_name = resolve_device_dtype(cfg.device, cfg.dtype)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        dtype = getattr(torch, dtype_name)
        try:
            check_ref_audio(VoiceSettings.of(cfg), allow_download=cfg.allow_download)
        except VoiceSettingsError as exc:
            raise ConfigError(str(exc)) from exc

        cuda_device = torch.device(device) if device.startswith("cuda") else None
        buckets = tuple(b for b in cfg.prefill_buckets if b > 0)
        if buckets and max(buckets) > cfg.max_seq_len:
            raise ConfigError(f"prefill_buckets {list(buckets)} must be <= max_seq_len={cfg.max_seq_len}")
        graphs = cfg.use_cuda_graphs and cuda_device is not None
        frame_options: dict[str, Any] = {
            # Buckets pay off only as captured graphs; uncaptured they would just pad the prefill.
            "prefill_buckets": buckets if graphs else (),
            "compile": None if cfg.compile else False,  # None: where available
        }
        if cfg.compile and graphs:
            keep_compiled_kernels()
        if cuda_device is not None:
            torch.cuda.synchronize(cuda_device)
            self._baseline_bytes = torch.cuda.memory_allocated(cuda_device)
        self._log.info(f"loading weights from {model} ({device} {dtype_name}, max_seq_len {cfg.max_seq_len})")
        t0 = time.monotonic()
        try:
            engine = Qwen3TTSCudaGraphs.from_pretrained(
                model,
                device=device,
                dtype=dtype,
                max_seq_len=cfg.max_seq_len,
                use_cuda_graphs=cfg.use_cuda_graphs,
                allow_download=cfg.allow_download,
                frame_options=frame_options,
            )
        except Exception as exc:  # noqa: BLE001 - a truncated file surfaces as its reader's own error type
            if cuda_device is not None and _is_out_of_memory(exc):
                gc.collect()  # the half-built model
                torch.cuda.empty_cache()
                raise ConfigError(
                    f"CUDA out of memory while loading {model!r} with max_seq_len={cfg.max_seq_len}: free "
                    f"GPU memory or lower max_seq_len ({type(exc).__name__}: {exc})"
                ) from exc
            raise ConfigError(f"cannot load model {model!r}: {type(exc).__name__}: {exc}") from exc
        self._engine, self._cuda_device = engine, cuda_device
        self._log.info(f"weights loaded in {time.monotonic() - t0:.1f} s; preparing the voice")
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
            self._stats.update(
                device=device,
                dtype=dtype_name,
                model=model,
                mode=self._request_fields["mode"],
                cuda_graphs_captured=False,
                capture_time_s=0.0,
            )
        self._record_memory()
        return (
            f"loaded {model} ({engine.tts_model_type}, mode {self._request_fields['mode']}) on {device} "
            f"{dtype_name} in {time.monotonic() - t0:.1f} s"
        )

    def _check_room_for_text(self, engine, cfg: LoadConfig) -> None:
        """Refuse at configure a max_seq_len that the voice's prompt (instruct, voice-clone reference) leaves
        no room for text in; otherwise every utterance would fail. stream() validates without generating."""
        request = SpeechRequest(text="Hello.", sampling=cfg.warmup_settings.sampling, **self._request_fields)
        try:
            engine.stream(request).close()
        except ValueError as exc:
            raise ConfigError(f"max_seq_len={cfg.max_seq_len} is too small for this voice: {exc}") from exc

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
        except Exception as exc:
            if self._cuda_device is None or not _is_out_of_memory(exc):
                raise
            max_seq_len = self._cfg.max_seq_len
            released = self._release()  # a failed capture holds memory; the model must be loaded again anyway
            raise ModelReleased(
                f"CUDA out of memory in CUDA-graph capture / warm-up (max_seq_len={max_seq_len}); "
                f"{released}. Free GPU memory or lower max_seq_len, then configure again. "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def _capture_and_warm_up(self) -> str:
        msg = "graphs kept from the previous activation"
        if not self._captured:
            self._log_capture_plan()
            capture_s = float(self._engine.capture() or 0.0)
            self._captured = True
            graphs = bool(self._cfg.use_cuda_graphs and self._cuda_device is not None)
            with self._cond:
                self._stats.update(capture_time_s=capture_s, cuda_graphs_captured=graphs)
            msg = f"{'CUDA graphs captured' if graphs else 'no CUDA graphs (CPU)'} in {capture_s:.2f} s"
            if self._cfg.warmup_text:
                # The configured voice and chunking, a few frames only (a random model may never say EOS).
                t0 = time.monotonic()
                base = self._cfg.warmup_settings
                sampling = dataclasses.replace(base.sampling, max_new_tokens=WARMUP_FRAMES)
                settings = dataclasses.replace(base, sampling=sampling)
                request = self._request(self._cfg.warmup_text, settings)
                self._log.info(f"warm-up: {WARMUP_FRAMES} frames of {self._cfg.warmup_text!r}")
                for _ in self._engine.stream(request, **self._stream_kwargs(settings, threading.Event())):
                    pass
                msg += f", warm-up {time.monotonic() - t0:.2f} s"
        self._record_memory()
        return msg

    def _log_capture_plan(self) -> None:
        cfg = self._cfg
        if not (cfg.use_cuda_graphs and self._cuda_device is not None):
            return  # nothing to capture on a CPU (or with use_cuda_graphs false)
        from qwen3_tts_ros.engine.compile import compile_available

        buckets = [b for b in cfg.prefill_buckets if b > 0]
        what = "the decode step" + (f" and {len(buckets)} prefill buckets {buckets}" if buckets else "")
        if cfg.compile and compile_available(self._cuda_device):
            what += "; torch.compile first (a minute or more on a first run, seconds from the kernel cache)"
        self._log.info(f"capturing CUDA graphs: {what}")

    def _release(self) -> str:
        if self._engine is None:
            return "nothing loaded"
        engine, self._engine = self._engine, None
        self._request_fields, self._encoder, self._cfg, self._captured = {}, None, None, False
        engine.close()
        del engine
        gc.collect()
        msg = "model released"
        if self._cuda_device is not None:
            import torch

            torch.cuda.synchronize(self._cuda_device)
            # cuBLAS keeps per-stream workspaces in the caching allocator (counted as allocated); the model's
            # streams are gone, so give them back too (torch has no public call for this).
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:
                clear_workspaces()
            torch.cuda.empty_cache()
            now = torch.cuda.memory_allocated(self._cuda_device)
            msg += (
                f"; GPU memory allocated {now / 2**20:.1f} MiB "
                f"(before configure {self._baseline_bytes / 2**20:.1f} MiB)"
            )
        self._record_memory()
        self._cuda_device = None
        with self._cond:
            self._stats.update(cuda_graphs_captured=False, capture_time_s=0.0)
        return msg

    def _record_memory(self) -> None:
        mb = 0.0
        if self._cuda_device is not None:
            import torch

            mb = torch.cuda.memory_allocated(self._cuda_device) / 2**20
        with self._cond:
            self._stats["gpu_memory_allocated_mb"] = mb

    def _request(self, text: str, settings: UtteranceSettings) -> SpeechRequest:
        return SpeechRequest(text=text, sampling=settings.sampling, **self._request_fields)

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
            frame_ms_p50=_percentile(frame_ms, 50),
            frame_ms_p95=_percentile(frame_ms, 95),
            frame_ms_max=float(max(frame_ms)) if frame_ms else 0.0,
            decode_ms_total=stats.decode_ms_total if stats is not None else 0.0,
            interrupted=interrupted,
            error=error or ("stopped" if interrupted else ""),
            stopped_by=stopped_by(error, interrupted, stats),
        )
        self._sink.latency(record)
        self._log_utterance(record, queued.stop_reason)
        self._record_memory()
        with self._cond:
            st = self._stats
            st["utterances"] += 1
            st["interrupted"] += int(interrupted and not error)
            st["errors"] += int(bool(error))
            st["last_failed"] = bool(error) and not queued.cancel.is_set()
            if error:
                st["last_error"] = error
            if first_published is not None:
                st["ttfa_ms"].append(record["time_to_first_audio_ms"])
            if frames_done:
                st["last_rtf"] = record["real_time_factor"]
                st["last_ms_per_frame"] = record["frame_ms_mean"]
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
            self._log.warning(f"{line} (cut: prompt + frames reached max_seq_len={self._cfg.max_seq_len})")
        elif record["stopped_by"] == "max_new_tokens":
            self._log.warning(f"{line} (cut: sampling.max_new_tokens reached)")
        else:
            self._log.info(line)
