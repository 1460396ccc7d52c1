"""What configure loads and cleanup releases: the engine, the voice's request fields and the PCM encoder, as
the synthesis worker holds them between the transitions. Every method runs on the worker's thread (the
engine's CUDA work must stay on one thread); the lifecycle transitions reach them through the worker's task
queue and wait for the result.

  load      (configure)  open_engine(EngineConfig), the voice prompt, a check that text fits max_seq_len
  activate  (activate)   capture CUDA graphs + warm up, once per load
  release   (cleanup)    engine.close(): graphs, caches and memory given back
"""

from __future__ import annotations

import threading
import time
from typing import Any

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
from qwen3_tts_ros.node.worker_stats import WorkerStats
from qwen3_tts_ros.node.worker_types import ConfigError, LoadConfig, Logger, ModelReleased, UtteranceSettings

WARMUP_FRAMES = 8


class LoadedModel:
    """The engine and what belongs to it, or nothing (`engine is None`). `stats` is the worker's, written
    under `lock` (the worker's condition) so that snapshots read it consistently."""

    def __init__(self, log: Logger, stats: WorkerStats, lock: threading.Condition):
        self._log = log
        self._stats = stats
        self._lock = lock
        self.engine = None
        self.cfg: LoadConfig | None = None
        self.request_fields: dict[str, Any] = {}  # the voice's SpeechRequest fields (mode, speaker, ...)
        self.encoder: PcmEncoder | None = None
        self._captured = False

    # ------------------------------------------------------------------ transitions
    def load(self, cfg: LoadConfig) -> str:
        self.release()
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
        self.engine = engine
        frame_path = engine.capture_report().frame_path_reason
        self._log.info(
            f"weights loaded in {time.monotonic() - t0:.1f} s ({device} {dtype_name}, "
            f"frame path {frame_path}); preparing the voice"
        )
        try:
            self.request_fields = self._voice(engine, cfg)
            self._check_room_for_text(cfg)
        except BaseException:
            self.release()
            raise
        self.cfg = cfg
        self.encoder = PcmEncoder(cfg.pcm_format, SAMPLE_RATE, cfg.sample_rate, cfg.gain)
        self._captured = False
        with self._lock:
            st = self._stats
            st.device, st.dtype, st.model, st.mode = device, dtype_name, model, self.request_fields["mode"]
            st.frame_path = frame_path
            st.cuda_graphs_captured, st.capture_time_s = False, 0.0
        self.record_memory()
        return (
            f"loaded {model} ({engine.tts_model_type}, mode {self.request_fields['mode']}) on {device} "
            f"{dtype_name} in {time.monotonic() - t0:.1f} s"
        )

    def activate(self) -> str:
        if self.engine is None:
            raise ConfigError("not configured")
        try:
            return self._capture_and_warm_up()
        except EngineOutOfMemory as exc:
            released = self.release()  # a failed capture holds memory; the model must be loaded again anyway
            raise ModelReleased(
                f"{exc}; {released}. Free GPU memory or lower max_seq_len, then configure again."
            ) from exc

    def release(self) -> str:
        if self.engine is None:
            return "nothing loaded"
        engine, self.engine = self.engine, None
        self.request_fields, self.encoder, self.cfg, self._captured = {}, None, None, False
        engine.close()  # gives the memory back (engine/core.py)
        msg = "model released"
        if engine.device.type == "cuda":
            msg += (
                f"; GPU memory allocated {engine.memory_allocated_bytes() / 2**20:.1f} MiB "
                f"(before configure {engine.memory_baseline_bytes / 2**20:.1f} MiB)"
            )
        self._record_memory_of(engine)
        with self._lock:
            self._stats.cuda_graphs_captured, self._stats.capture_time_s = False, 0.0
        return msg

    # ------------------------------------------------------------------ per utterance
    def request(self, text, settings: UtteranceSettings) -> SpeechRequest:
        """The request for `text` (a str, or an iterable of str pieces: one utterance) in the loaded voice."""
        sampling = self.engine.sampling_params(**settings.sampling)
        return SpeechRequest(text=text, sampling=sampling, **self.request_fields)

    def stream_kwargs(self, s: UtteranceSettings, cancel: threading.Event) -> dict[str, Any]:
        pcm_format = "int16" if self.encoder.passes_int16_through() else "float32"
        return dict(
            first_chunk_frames=s.first_chunk_frames,
            chunk_frames=s.chunk_frames,
            pcm_format=pcm_format,
            cancel=cancel,
        )

    def record_memory(self) -> None:
        self._record_memory_of(self.engine)

    # ------------------------------------------------------------------ helpers
    def _record_memory_of(self, engine) -> None:
        mb = engine.memory_allocated_bytes() / 2**20
        with self._lock:
            self._stats.gpu_memory_allocated_mb = mb

    def _voice(self, engine, cfg: LoadConfig) -> dict[str, Any]:
        """Validate the voice settings against the loaded model; build (and cache) the voice prompt."""
        try:
            return voice_request_fields(engine, VoiceSettings.of(cfg), warn=self._log.warning)
        except VoiceSettingsError as exc:
            raise ConfigError(str(exc)) from exc

    def _check_room_for_text(self, cfg: LoadConfig) -> None:
        """Refuse at configure a max_seq_len that the voice's prompt (instruct, voice-clone reference) leaves
        no room for text in; otherwise every utterance would fail. stream() validates without generating."""
        try:
            self.engine.stream(self.request("Hello.", cfg.warmup_settings)).close()
        except ValueError as exc:
            max_seq_len = cfg.engine.max_seq_len
            raise ConfigError(f"max_seq_len={max_seq_len} is too small for this voice: {exc}") from exc

    def _capture_and_warm_up(self) -> str:
        engine = self.engine
        msg = "graphs kept from the previous activation"
        if not self._captured:
            self._log_capture_plan()
            capture_s = float(engine.capture() or 0.0)
            self._captured = True
            graphs = bool(self.cfg.engine.use_cuda_graphs and engine.device.type == "cuda")
            with self._lock:
                self._stats.capture_time_s, self._stats.cuda_graphs_captured = capture_s, graphs
            msg = f"{'CUDA graphs captured' if graphs else 'no CUDA graphs (CPU)'} in {capture_s:.2f} s"
            if self.cfg.warmup_text:
                # The configured voice and chunking, a few frames only (a random model may never say EOS).
                settings = self.cfg.warmup_settings
                options = self.stream_kwargs(settings, threading.Event())
                self._log.info(f"warm-up: {WARMUP_FRAMES - 1} frames of {self.cfg.warmup_text!r}")
                seconds = engine.warmup(
                    self.cfg.warmup_text,
                    max_frames=WARMUP_FRAMES - 1,
                    request=self.request(self.cfg.warmup_text, settings),
                    first_chunk_frames=options["first_chunk_frames"],
                    chunk_frames=options["chunk_frames"],
                    pcm_format=options["pcm_format"],
                )
                msg += f", warm-up {seconds:.2f} s"
        self.record_memory()
        return msg

    def _log_capture_plan(self) -> None:
        cfg, engine = self.cfg.engine, self.engine
        if not (cfg.use_cuda_graphs and engine.device.type == "cuda"):
            return  # nothing to capture on a CPU (or with use_cuda_graphs false)
        report = engine.capture_report()
        buckets = [b for b in cfg.prefill_buckets if b > 0]
        what = "the decode step" + (f" and {len(buckets)} prefill buckets {buckets}" if buckets else "")
        if report.frame_path == "fused-triton":
            what += "; fused Triton kernels compile first (about 20 s on a first run, ~1 s from the cache)"
        elif report.frame_path == "compiled":
            what += "; torch.compile first (a minute or more on a first run, seconds from the kernel cache)"
        self._log.info(f"capturing CUDA graphs: {what}")
