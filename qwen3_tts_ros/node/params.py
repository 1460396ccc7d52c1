"""Every parameter of the qwen3_tts node: name, default, descriptor, validation.

Two kinds of parameter:
- load-time (`applied_at="configure"`): read when the node is configured (model, device, voice, output
  format, topics' QoS...). Changing one needs cleanup + configure, so a change is refused while the node is
  configured; while unconfigured it is accepted and used by the next configure.
- per-utterance (`applied_at="utterance"`): sampling and chunking; a change applies from the next text on.

No rclpy import at module level except the descriptor messages, so config tests can read the table cheaply."""

from __future__ import annotations

from typing import Any

from qwen3_tts_ros.engine.audio.pcm import PCM_FORMATS
from qwen3_tts_ros.engine.checkpoints.loading import check_device_name
from qwen3_tts_ros.engine.frame.options import check_prefill_buckets, frame_path_choices
from qwen3_tts_ros.engine.types import RunawayGuard, SamplingParams
from qwen3_tts_ros.node.param_spec import Spec
from qwen3_tts_ros.node.playback_params import PLAYBACK_SPECS
from qwen3_tts_ros.node.settings import (
    MODEL_DEFAULT_FLOAT,
    MODEL_DEFAULT_INT,
    SAMPLING_PREFIX,
    sampling_overrides,
)

DEVICES_HELP = "'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'"
DTYPES = ("auto", "bfloat16", "float16", "float32")
VOICE_MODES = ("", "voice_clone", "custom_voice", "voice_design")
FRAME_PATH_CHOICES = frame_path_choices()
QUEUE_POLICIES = ("queue", "interrupt")
# A sampling number at this value means "the model's default" (a ROS parameter cannot be unset or null):
# .nan in YAML for a float, -1 for an integer (no sampling setting accepts -1).


def _sampling(field: str, default: Any, description: str) -> Spec:
    """A per-utterance sampling.<field> parameter (SamplingParams' field of that name)."""
    return Spec(SAMPLING_PREFIX + field, default, description, "utterance")


SPECS: tuple[Spec, ...] = (
    # --- model
    Spec(
        "model",
        "",
        "Model directory or Hugging Face hub id. Empty: the built-in tiny RANDOM demo checkpoint "
        "(written once to a cache dir; it produces noise, for demos/CI only).",
        "configure",
    ),
    Spec(
        "allow_download", False, "Allow hub downloads of the model and http(s) reference audio.", "configure"
    ),
    Spec("device", "auto", "Torch device: " + DEVICES_HELP + ".", "configure"),
    Spec(
        "dtype",
        "auto",
        "Weights dtype; 'auto' is bfloat16 on CUDA, float32 on CPU.",
        "configure",
        choices=DTYPES,
    ),
    Spec(
        "max_seq_len",
        2048,
        "Static KV-cache length of the talker (prompt + generated frames).",
        "configure",
        int_range=(64, 32768),
    ),
    Spec("use_cuda_graphs", True, "Capture CUDA graphs at activate (ignored on CPU).", "configure"),
    Spec(
        "frame_path",
        "auto",
        "How each decode frame runs. auto: the fastest path that runs on the device (fused Triton kernels "
        "where CUDA and Triton >= 3 import, else the torch.compile'd reference, else eager), logged at "
        "configure and in /diagnostics with the reason; a path name forces it, and configure fails with the "
        "reason where it cannot run. reference: the reference frame, compiled where that runs. The CPU runs "
        "the eager reference frame.",
        "configure",
        choices=FRAME_PATH_CHOICES,
    ),
    Spec(
        "prefill_buckets",
        (32, 64, 128, 256),
        "Prompt lengths (positions) with a prefill graph captured each; a prompt is padded to the smallest "
        "bucket that holds it, a longer one runs uncaptured. Each <= max_seq_len; [0]: no buckets.",
        "configure",
    ),
    Spec(
        "runaway.frames_per_token",
        RunawayGuard.frames_per_token,
        "Runaway guard: an utterance the model has not ended after max(runaway.min_frames, this * its text's "
        "tokens) frames ends there (a warning, counted as runaway). Speech takes about 2-5 frames per token. "
        "0.0: off (as qwen-tts: only sampling.max_new_tokens limits it).",
        "configure",
        float_range=(0.0, 1000.0),
    ),
    Spec(
        "runaway.min_frames",
        RunawayGuard.min_frames,
        "Runaway guard: frames every utterance may have whatever its length (12.5 frames per second).",
        "configure",
        int_range=(1, 100000),
    ),
    # --- voice
    Spec(
        "voice.mode",
        "",
        "'' picks the mode of the model (base: voice_clone, custom_voice, voice_design).",
        "configure",
        choices=VOICE_MODES,
    ),
    Spec("voice.language", "Auto", "Language name of the model ('Auto' lets the model decide).", "configure"),
    Spec("voice.speaker", "", "custom_voice speaker; '' takes the model's first speaker.", "configure"),
    Spec(
        "voice.instruct",
        "",
        "Style instruction (voice_design: required description of the voice; custom_voice 1.7B: optional).",
        "configure",
    ),
    Spec(
        "voice.ref_audio",
        "",
        "voice_clone: reference audio file (local path; URLs only with allow_download). "
        "Encoded once at configure.",
        "configure",
    ),
    Spec("voice.ref_text", "", "voice_clone: transcript of ref_audio ('' with x_vector_only).", "configure"),
    Spec(
        "voice.x_vector_only",
        False,
        "voice_clone: use only the speaker embedding, no reference codes.",
        "configure",
    ),
    Spec(
        "voices.file",
        "",
        "Named voices: a YAML / JSON voice file (docs/VOICES.md) whose voices requests choose by name; each "
        "is prepared once at configure. Its 'default' voice (or its voice named 'default') replaces the "
        "voice.* parameters; '' none.",
        "configure",
    ),
    # --- sampling (qwen-tts names; do_sample false + subtalker_dosample false = greedy, deterministic).
    # Numbers left at MODEL_DEFAULT (.nan / -1) take the model's generation_config.json, then qwen-tts's
    # default; what a value must be is SamplingParams' rule (engine/types.py), checked in `validate`.
    _sampling("do_sample", True, "Sample the talker's first codebook (false: greedy)."),
    _sampling("top_k", MODEL_DEFAULT_INT, "Talker top-k (0: off)."),
    _sampling("top_p", MODEL_DEFAULT_FLOAT, "Talker top-p."),
    _sampling("temperature", MODEL_DEFAULT_FLOAT, "Talker temperature."),
    _sampling("repetition_penalty", MODEL_DEFAULT_FLOAT, "Talker repetition penalty."),
    _sampling("subtalker_dosample", True, "Sample the code predictor's codebooks (false: greedy)."),
    _sampling("subtalker_top_k", MODEL_DEFAULT_INT, "Code-predictor top-k (0: off)."),
    _sampling("subtalker_top_p", MODEL_DEFAULT_FLOAT, "Code-predictor top-p."),
    _sampling("subtalker_temperature", MODEL_DEFAULT_FLOAT, "Code-predictor temperature."),
    _sampling("max_new_tokens", MODEL_DEFAULT_INT, "Most codec frames per utterance (80 ms each)."),
    # --- streaming
    Spec(
        "streaming.first_chunk_frames",
        1,
        "Frames in the first chunk (smaller: earlier first audio).",
        "utterance",
        int_range=(1, 64),
    ),
    Spec("streaming.chunk_frames", 4, "Frames per later chunk.", "utterance", int_range=(1, 64)),
    Spec(
        "text.split_sentences",
        True,
        "Split long text at sentence boundaries into back-to-back utterances.",
        "utterance",
    ),
    Spec(
        "text.max_chars",
        10000,
        "Longest text accepted, in characters; a longer one is rejected whole (logged, counted as too_long), "
        "never cut.",
        "utterance",
        int_range=(1, 1000000),
    ),
    # --- text streams (tts/text_stream)
    Spec(
        "text_stream.timeout_s",
        5.0,
        "A text stream that sends no chunk for this long ends as if final; a missing chunk is waited for "
        "this long, then the stream ends at the gap.",
        "utterance",
        float_range=(0.01, 3600.0),
    ),
    Spec(
        "text_stream.max_open_streams",
        4,
        "Most text streams assembling at once; a chunk that would open one more is rejected with the rest of "
        "its stream (counted).",
        "utterance",
        int_range=(1, 1000),
    ),
    Spec(
        "text_stream.max_buffered_chars",
        10000,
        "Most characters a text stream holds that its utterance has not taken yet (chunks after a gap, text "
        "waiting in the queue); the chunk that would exceed it is rejected and the stream ends before it.",
        "utterance",
        int_range=(1, 1000000),
    ),
    # --- output
    Spec(
        "output.format",
        "int16",
        "PCM sample format of /tts/audio: int16 (S16LE) or float32 (F32LE).",
        "configure",
        choices=PCM_FORMATS,
    ),
    Spec(
        "output.sample_rate",
        24000,
        "Output rate in Hz; other than 24000 resamples (for players that need it).",
        "configure",
        int_range=(8000, 192000),
    ),
    Spec(
        "output.gain",
        1.0,
        "Linear gain on every output sample (1.0: unity, the model's level; 0.25: about -12 dB). int16 "
        "samples past full scale are clipped.",
        "configure",
        float_range=(0.0, 16.0),
    ),
    Spec(
        "output.frame_id",
        "",
        "header.frame_id of AudioChunk messages (e.g. the speaker's frame).",
        "configure",
    ),
    Spec(
        "output.audio_depth",
        100,
        "Keep-last depth of the reliable /tts/audio publisher.",
        "configure",
        int_range=(1, 10000),
    ),
    Spec(
        "output.audio_data_topic",
        "",
        "Also publish audio_common_msgs/AudioData here (e.g. 'audio/audio' for "
        "ros-drivers audio_play); '' disables.",
        "configure",
    ),
    # --- queueing
    Spec(
        "queue.policy",
        "queue",
        "'queue': play texts in order; 'interrupt': new text cancels the current text and the queue.",
        "utterance",
        choices=QUEUE_POLICIES,
    ),
    Spec(
        "queue.max_size",
        16,
        "Most waiting texts (a text split into sentences is one); when full the oldest is dropped, counted.",
        "utterance",
        int_range=(1, 10000),
    ),
    Spec(
        "queue.keep_on_deactivate",
        False,
        "Keep waiting texts across deactivate (else dropped).",
        "utterance",
    ),
    # --- misc
    Spec(
        "diagnostics.period_s",
        1.0,
        "Period of /diagnostics in seconds (0 disables).",
        "configure",
        float_range=(0.0, 3600.0),
    ),
    Spec("warmup.text", "Hello.", "Text synthesised once at activate to warm up ('' skips).", "configure"),
    Spec(
        "autostart",
        False,
        "Configure and activate by itself at start-up (for ros2 run without launch).",
        "configure",
    ),
)
SPECS += PLAYBACK_SPECS
SPEC_BY_NAME = {s.name: s for s in SPECS}


def validate(name: str, value: Any) -> str | None:
    """Reason why `value` is not acceptable for `name` beyond type and range, or None."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"{name} must be one of {spec.choices}, got {value!r}"
    if name.startswith(SAMPLING_PREFIX):
        try:  # the engine's rule, with the engine's message
            SamplingParams.check_overrides(**sampling_overrides({name: value}))
        except ValueError as exc:
            return str(exc)
    checks = {"prefill_buckets": _check_buckets, "device": check_device_name}  # the engine's (EngineConfig)
    try:
        checks.get(name, lambda value: None)(value)
    except ValueError as exc:
        return str(exc)
    return None


def _check_buckets(value) -> None:
    sizes = [int(b) for b in value]
    if sizes != [0]:  # [0]: none
        check_prefill_buckets(sizes)


def declare_all(node) -> None:
    for spec in SPECS:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        node.declare_parameter(spec.name, default, spec.descriptor())


def read_all(node) -> dict[str, Any]:
    """Current values; integer arrays as tuples (rclpy hands them out as lists or array.array)."""
    values = {spec.name: node.get_parameter(spec.name).value for spec in SPECS}
    return {
        name: tuple(int(x) for x in value) if isinstance(SPEC_BY_NAME[name].default, tuple) else value
        for name, value in values.items()
    }
