"""What configure loads and cleanup releases: the engine, the voice's request fields and the PCM encoder, as
the synthesis worker holds them between the transitions. Every method runs on the worker's thread (the
engine's CUDA work must stay on one thread); the lifecycle transitions reach them through the worker's task
queue and wait for the result.

  load      (configure)  open_engine(EngineConfig), the voices (each prepared once: clone prompts encoded,
                         a check that text fits max_seq_len)
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
from qwen3_tts_ros.engine.voice import VoiceSettings, VoiceSettingsError, check_ref_audio, node_label
from qwen3_tts_ros.engine.voice_book import (
    DEFAULT_VOICE,
    VoiceBook,
    VoiceChoice,
    VoiceFile,
    parse_voice_text,
    prepare_voice,
    read_voice_file,
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
        # The prepared voices by name (read by executor threads too: VoiceBook is thread-safe).
        self.voices = VoiceBook()
        self.encoder: PcmEncoder | None = None
        self._captured = False

    # ------------------------------------------------------------------ transitions
    def load(self, cfg: LoadConfig) -> str:
        self.release()
        try:
            voice_file = read_voice_file(cfg.voices_file) if cfg.voices_file else VoiceFile("", {})
            if not voice_file.default_voice():
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
            f"frame path {frame_path}); preparing the voices"
        )
        try:
            self._prepare_voices(engine, cfg, voice_file)
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
        self.voices.reset(None)
        self.encoder, self.cfg, self._captured = None, None, False
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
    @property
    def request_fields(self) -> dict[str, Any]:
        """The default voice's SpeechRequest fields (mode, speaker, ...); {} while nothing is loaded."""
        try:
            return self.voices.resolve(VoiceChoice())
        except ValueError:
            return {}

    def request(
        self, text, settings: UtteranceSettings, voice: dict[str, Any] | None = None
    ) -> SpeechRequest:
        """The request for `text` (a str, or an iterable of str pieces: one utterance) in `voice` (request
        fields resolved by the VoiceBook when the text arrived; None: the default voice)."""
        sampling = self.engine.sampling_params(**settings.sampling)
        return SpeechRequest(text=text, sampling=sampling, **(voice or self.request_fields))

    # ------------------------------------------------------------------ voices at run time (~/set_voice)
    def set_voice(self, name: str, spec: str) -> str:
        """Prepare the voice `name` from YAML / JSON `spec` and add (or replace) it; ValueError says why
        not. Texts already queued keep the fields they were given."""
        if self.engine is None:
            raise ValueError("no model loaded")
        if name == self.voices.default:
            raise ValueError(f"voice {name!r} is the default voice; it is set at configure")
        voice = prepare_voice(self.engine, name, parse_voice_text(name, spec), warn=self._log.warning)
        replaced = self.voices.put(voice)
        return f"{'replaced' if replaced else 'added'} voice {voice.describe()}"

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

    def _prepare_voices(self, engine, cfg: LoadConfig, voice_file: VoiceFile) -> None:
        """Validate every voice against the loaded model and prepare it once (a clone's reference encoded,
        a prompt that leaves max_seq_len no room for text refused); log what each cost."""
        default = voice_file.default_voice()
        try:
            prepared = []
            if not default:
                settings = VoiceSettings.of(cfg)
                prepared.append(
                    prepare_voice(engine, DEFAULT_VOICE, settings, label=node_label, warn=self._log.warning)
                )
            for name, settings in voice_file.voices.items():
                prepared.append(prepare_voice(engine, name, settings, warn=self._log.warning))
        except VoiceSettingsError as exc:
            raise ConfigError(str(exc)) from exc
        for voice in prepared:
            self._log.info(f"voice {voice.describe()}")
        self.voices.reset(engine.voices, prepared, default or DEFAULT_VOICE)

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
