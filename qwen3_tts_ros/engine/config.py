"""Settings -> a loaded engine: `EngineConfig` (validated when made) and `open_engine`, the one way the ROS
node and the `qwen3-tts-say` CLI build their engine.

Every setting is checked here, once, with one message per problem (ValueError naming the setting); what can
only be known on the machine (is CUDA there, does the model load, does it fit in memory) is refused by
`open_engine` with an exception of its own: EngineConfigError, ModelLoadError, EngineOutOfMemory.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch

from qwen3_tts_ros.home import keep_compiled_kernels

from .checkpoints.demo_checkpoint import ensure_demo_checkpoint
from .checkpoints.loading import check_device_name, check_dtype_name, resolve_device_dtype
from .errors import EngineConfigError, EngineOutOfMemory, ModelLoadError, is_out_of_memory
from .frame.options import DEFAULT_MAX_SEQ_LEN, FrameOptions, check_prefill_buckets, suggested_prefill_buckets
from .frame.paths import choose_frame_path
from .model import Qwen3TTSCudaGraphs
from .types import Rule, RunawayGuard

MAX_SEQ_LEN_RULE = Rule(int, 64)


@dataclass(frozen=True)
class EngineConfig:
    """What an engine is built from. Checked when made: ValueError naming the setting."""

    model: str = ""  # a model directory or hub id; "": the built-in tiny RANDOM demo checkpoint (noise)
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N"
    dtype: str = "auto"  # "auto" (bfloat16 on CUDA, float32 on CPU), "bfloat16", "float16", "float32"
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN  # static K/V cache: prompt + generated frames of one utterance
    use_cuda_graphs: bool = True  # no effect on CPU
    compile: bool = True  # torch.compile the decode step where available (CUDA with Triton); False: eager
    # Each frame as ~600 fused Triton kernels (frame/fused_triton.py) instead of the compiled step: 2.2x
    # faster on an H200; needs CUDA with Triton >= 3 (EngineConfigError elsewhere). Off by default until
    # the whole GPU test suite has passed on it (see BENCHMARKS.md).
    fused_kernels: bool = False
    # Prompt sizes with a captured prefill graph each; None: the suggested ones that fit max_seq_len.
    # Used only with CUDA graphs (uncaptured, a bucket would only pad the prefill).
    prefill_buckets: tuple[int, ...] | None = None
    codec_side_stream: bool = True  # CUDA: decode streamed audio on a side stream, overlapped (core.py)
    allow_download: bool = False  # hub downloads of the model and of http(s) reference audio
    # Runaway guard (types.py RunawayGuard): end an utterance after max(runaway_min_frames,
    # runaway_frames_per_token * its text tokens) frames; None: off, as qwen-tts.
    runaway_frames_per_token: float | None = None
    runaway_min_frames: int = RunawayGuard.min_frames

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            raise ValueError(f"model must be a str, got {type(self.model).__name__}")
        if "://" in self.model:
            raise ValueError(
                f"model must be a local directory or a hub id (org/name), not a URL: {self.model}"
            )
        check_device_name(self.device)
        check_dtype_name(self.dtype)
        MAX_SEQ_LEN_RULE.check("max_seq_len", self.max_seq_len)
        for name in ("use_cuda_graphs", "compile", "fused_kernels", "codec_side_stream", "allow_download"):
            Rule(bool).check(name, getattr(self, name))
        if self.prefill_buckets is not None:
            object.__setattr__(self, "prefill_buckets", tuple(self.prefill_buckets))
            check_prefill_buckets(self.prefill_buckets, self.max_seq_len)
        self.runaway()  # its own checks

    def runaway(self) -> RunawayGuard | None:
        if self.runaway_frames_per_token is None:
            return None
        return RunawayGuard(self.runaway_frames_per_token, self.runaway_min_frames)

    def buckets(self) -> tuple[int, ...]:
        """The prefill buckets to capture (None resolved)."""
        if self.prefill_buckets is None:
            return suggested_prefill_buckets(self.max_seq_len)
        return self.prefill_buckets

    def frame_path(self) -> str:
        """The frame path asked for (frame/paths.py): fused_kernels -> "fused-triton"; compile off -> "eager";
        else "auto" (the chooser's pick for the device)."""
        if self.fused_kernels:
            return "fused-triton"
        return "auto" if self.compile else "eager"

    def frame_options(self, device: str) -> FrameOptions:
        """The frame loop's options on `device` (prefill buckets only where they are captured)."""
        graphs = self.use_cuda_graphs and device.startswith("cuda")
        return FrameOptions(
            max_seq_len=self.max_seq_len,
            use_cuda_graphs=self.use_cuda_graphs,
            prefill_buckets=self.buckets() if graphs else (),
            path=self.frame_path(),
        )


def open_engine(config: EngineConfig) -> Qwen3TTSCudaGraphs:
    """Load the model of `config` and build the engine on the calling thread (which then owns its CUDA work).

    EngineConfigError: the device or dtype cannot be used here. EngineOutOfMemory: CUDA out of memory while
    loading. ModelLoadError: any other failure to load, naming the model.
    """
    try:
        device, dtype_name = resolve_device_dtype(config.device, config.dtype)
    except ValueError as exc:
        raise EngineConfigError(str(exc)) from exc
    frame_options = config.frame_options(device)
    try:  # refused here, before loading (the generator chooses again, the same way)
        path, _ = choose_frame_path(torch.device(device), frame_options.path)
    except EngineConfigError as exc:
        raise EngineConfigError(f"fused_kernels: {exc}" if config.fused_kernels else str(exc)) from exc
    model = config.model or str(ensure_demo_checkpoint())
    on_cuda = device.startswith("cuda")
    if path.name != "eager" and config.use_cuda_graphs and on_cuda:
        keep_compiled_kernels()
    baseline = 0
    if on_cuda:
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
    try:
        engine = Qwen3TTSCudaGraphs.from_pretrained(
            os.path.expanduser(model),
            device=device,
            dtype=getattr(torch, dtype_name),
            allow_download=config.allow_download,
            frame_options=frame_options,
            codec_stream=config.codec_side_stream,
            runaway=config.runaway(),
        )
    except Exception as exc:  # noqa: BLE001 - a truncated file surfaces as its reader's own error type
        if on_cuda and is_out_of_memory(exc):
            gc.collect()  # the half-built model
            torch.cuda.empty_cache()
            raise EngineOutOfMemory(
                f"CUDA out of memory while loading {model!r} with max_seq_len={config.max_seq_len}: free "
                f"GPU memory or lower max_seq_len ({type(exc).__name__}: {exc})"
            ) from exc
        raise ModelLoadError(f"cannot load model {model!r}: {type(exc).__name__}: {exc}") from exc
    engine.memory_baseline_bytes = baseline
    return engine
