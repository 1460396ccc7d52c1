"""ROS-free Qwen3-TTS engine: qwen-tts's API on a CUDA-graph frame loop, plus streaming output."""

from .audio.audio_stream import AudioStream
from .capture_report import CaptureReport
from .config import EngineConfig, open_engine
from .errors import EngineConfigError, EngineOutOfMemory, ModelLoadError
from .frame.options import FrameOptions
from .model import Qwen3TTSCudaGraphs
from .text_feed import TextFeed
from .types import PcmChunk, RunawayGuard, SamplingParams, SpeechRequest, StreamStats, VoicePrompt
from .voice_prompt import load_voice_prompt, save_voice_prompt

__all__ = [
    "AudioStream",
    "CaptureReport",
    "EngineConfig",
    "EngineConfigError",
    "EngineOutOfMemory",
    "FrameOptions",
    "ModelLoadError",
    "PcmChunk",
    "Qwen3TTSCudaGraphs",
    "RunawayGuard",
    "SamplingParams",
    "SpeechRequest",
    "StreamStats",
    "TextFeed",
    "VoicePrompt",
    "load_voice_prompt",
    "open_engine",
    "save_voice_prompt",
]
