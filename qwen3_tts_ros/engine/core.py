"""The engine core: a request -> prefill -> frames -> audio (whole, or streamed as PcmChunks), batch size 1.

`SpeechEngine` owns the loaded model's resources: the frame generator (CUDA graphs), the streaming codec and
its CUDA side stream, their release (`close`), the memory figures and the out-of-memory error
(EngineOutOfMemory). The qwen-tts-style API (`Qwen3TTSCudaGraphs`, model.py) is a thin facade over it.

A request is normalised once where it comes in (`normalize`: the voice rules of voice.py); prefill and
generation trust it. Text that does not fit max_seq_len is split at sentence boundaries (text_split.py) and
the pieces are generated in order, each its own utterance for the talker and the codec.

Streaming yields exactly 1920 samples per generated frame; the codec carries its causal state from chunk to
chunk (causal_codec.py), so the stream equals the non-streaming waveform to float rounding for any chunking
(test_api_codec.py states the figure). Voice-clone ICL: qwen-tts cuts the reference part proportionally
(`int(ref/total * samples)`), which can keep one extra sample that the stream does not have.

On CUDA the streaming codec runs on a side stream of the engine's (`codec_stream=True`, the default): a
chunk's decode and the copy of its samples to the host run there, ordered after the replays that made its
frames only, so the frames launched ahead keep generating on the main stream meanwhile, and the host waits
for the chunk's samples only. Time to first audio stays prefill + the first chunk's frames + one decode
(the first replay is launched alone, frame/generator.py).
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .audio.audio_stream import CHUNK_FRAMES, FIRST_CHUNK_FRAMES, AudioStream, check_chunking, chunk_stream
from .audio.causal_codec import CausalCodecDecoder
from .audio.codec import decode_full
from .capture_report import CaptureReport
from .errors import EngineOutOfMemory, is_out_of_memory
from .frame.generator import FrameGenerator
from .frame.options import FrameOptions
from .frame.prefill import build_prefill
from .host_memory import release_free_heap
from .piece_audio import PieceAudio
from .streamed_text import StreamedText, StreamPiece
from .text_feed import feed_from
from .text_split import split_text
from .types import SAMPLE_RATE, RunawayGuard, SamplingParams, SpeechRequest, StreamStats, VoicePrompt
from .voice import METHOD_OF_MODE, ModelVoices

# Budget for splitting long text: each text token is expected to take at most this many codec frames of
# speech (12.5 frames/s; one BPE token is ~0.1-0.3 s of speech); the frames share max_seq_len with the
# prompt.
FRAMES_PER_TEXT_TOKEN = 4
FIXED_POSITIONS_CACHE = 16  # voices whose prompt length without text is remembered


class SpeechEngine:
    """Qwen3-TTS on a static-cache, CUDA-graph decode loop, streaming or not (batch size 1).

    Not thread-safe: use one instance from one thread at a time (one generation runs at a time).
    """

    def __init__(
        self,
        tts,
        *,
        max_seq_len: int | None = None,
        use_cuda_graphs: bool | None = None,
        allow_download: bool = False,
        codec_stream: bool = True,
        runaway: RunawayGuard | None = None,
        frame_options: FrameOptions | Mapping[str, Any] | None = None,
    ):
        """tts: a loaded `qwen_tts.Qwen3TTSModel` (its model, processor and generation defaults are used).

        runaway: end an utterance whose model never says EOS (types.py RunawayGuard; stopped_by "runaway").
        None: off, as qwen-tts (only max_new_tokens and max_seq_len end such an utterance).

        codec_stream: on CUDA, decode streamed audio on a side stream, overlapped with frame generation
        (module doc); False decodes on the current stream, after the frames launched ahead. No effect on CPU.
        frame_options: a FrameOptions (frame/options.py), or a dict of its documented keys (launch_ahead,
        frames_per_replay, prefill_buckets, path, compile, fused; FrameOptions.from_mapping). max_seq_len and
        use_cuda_graphs (None: FrameOptions' defaults, 2048 and on) override its fields of the same name.
        """
        self.tts = tts
        self.model = tts.model
        self.processor = tts.processor
        self.generate_defaults = dict(tts.generate_defaults or {})
        self.voices = ModelVoices.of(tts)
        options = FrameOptions.from_mapping(
            frame_options, max_seq_len=max_seq_len, use_cuda_graphs=use_cuda_graphs
        )
        self.max_seq_len = options.max_seq_len
        self.allow_download = allow_download
        self.runaway = runaway
        self.frame_generator = FrameGenerator(self.model, options)
        self.device = self.frame_generator.device
        self.dtype = self.frame_generator.dtype
        # High priority: when a chunk's decode and frames launched ahead both wait for the GPU, the host
        # is waiting for the decode. (It also keeps this stream out of torch's low-priority pool, which
        # the frame generator's graphs were captured on; causal_codec.py says why that matters.)
        on_cuda = self.device.type == "cuda"
        self.decode_cuda_stream = (
            torch.cuda.Stream(self.device, priority=-1) if codec_stream and on_cuda else None
        )
        # One streaming codec state for the engine (one stream at a time); its CUDA graphs cover every
        # chunk length (graph sizes 1, 2, 4, 8 combined).
        self.codec = CausalCodecDecoder(
            self.model.speech_tokenizer.model.decoder,
            use_cuda_graphs=options.use_cuda_graphs,
            stream=self.decode_cuda_stream,
        )
        self.sample_rate = SAMPLE_RATE
        self.source: str | None = None  # the model directory or hub id, when loaded by from_pretrained
        self.memory_baseline_bytes = 0  # CUDA memory allocated before loading (open_engine measures it)
        self._fixed_positions: dict[tuple, tuple[Any, int]] = {}

    # -- model facts --------------------------------------------------------------------------------------
    @property
    def tts_model_type(self) -> str:
        return self.voices.model_type

    @property
    def tts_model_size(self) -> str:
        return self.voices.model_size

    @property
    def mode(self) -> str:
        """The generation mode this model supports: voice_clone, custom_voice or voice_design."""
        return self.voices.mode

    # -- resources ----------------------------------------------------------------------------------------
    def capture(self) -> float:
        """Capture the CUDA graphs (frame generation, streaming codec) on the calling thread (no-op on CPU);
        returns seconds spent. EngineOutOfMemory if CUDA runs out of memory."""
        with self._out_of_memory_as("CUDA-graph capture / warm-up"):
            return self.frame_generator.capture() + self.codec.capture()

    def warmup(
        self,
        text: str = "Hello.",
        *,
        max_frames: int = 4,
        request: SpeechRequest | None = None,
        first_chunk_frames: int = FIRST_CHUNK_FRAMES,
        chunk_frames: int = CHUNK_FRAMES,
        pcm_format: str = "int16",
    ) -> float:
        """Capture if needed, then run one short real generation + streaming decode (`request`'s voice and
        sampling, else a voice of the model's mode); returns seconds spent. EngineOutOfMemory as capture."""
        start = time.perf_counter()
        self.capture()
        if request is None:
            request = SpeechRequest(text=text, mode=self.mode, **self._any_voice())
        sampling = replace(request.sampling, max_new_tokens=max_frames + 1)
        request = replace(request, text=text, sampling=sampling)
        with self._out_of_memory_as("CUDA-graph capture / warm-up"):
            chunking = dict(first_chunk_frames=first_chunk_frames, chunk_frames=chunk_frames)
            for _ in self.stream(request, **chunking, pcm_format=pcm_format):
                pass
        return time.perf_counter() - start

    def _any_voice(self) -> dict[str, Any]:
        if self.mode == "custom_voice":
            return {"speaker": self.voices.first_speaker()}
        if self.mode == "voice_design":
            return {"instruct": "A calm voice."}
        # voice clone: any speaker embedding will do to exercise the path
        enc_dim = self.model.config.speaker_encoder_config.enc_dim
        return {"voice_prompt": VoicePrompt(None, torch.zeros(enc_dim), True, False)}

    def close(self) -> None:
        """Release the model, the graphs and the side stream, and give the memory back to the driver (CUDA
        cache, cuBLAS workspaces) and to the OS (free host heap). The instance is unusable afterwards;
        `memory_allocated_bytes` still answers."""
        if self.frame_generator is not None:
            self._report_at_close = self.capture_report()
        self.frame_generator = None
        self.codec = None
        self.decode_cuda_stream = None
        self.model = None
        self.tts = None
        self.processor = None
        self._fixed_positions.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            # cuBLAS keeps per-stream workspaces in the caching allocator (counted as allocated); the model's
            # streams are gone, so give them back too (torch has no public call for this).
            clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
            if clear_workspaces is not None:
                clear_workspaces()
            torch.cuda.empty_cache()
        release_free_heap()  # the freed model's host heap, else kept mapped by glibc (host_memory.py)

    def capture_report(self) -> CaptureReport:
        """The CUDA graphs captured and replayed, and the frame path with the reason it was chosen
        (capture_report.py). After close: the report at closing."""
        if self.frame_generator is None:
            return self._report_at_close
        return self.frame_generator.capture_report(self.codec)

    def memory_allocated_bytes(self) -> int:
        """CUDA memory allocated on the engine's device now (0 on CPU)."""
        return torch.cuda.memory_allocated(self.device) if self.device.type == "cuda" else 0

    @contextlib.contextmanager
    def _out_of_memory_as(self, during: str):
        try:
            yield
        except EngineOutOfMemory:
            raise
        except Exception as exc:
            if self.device.type != "cuda" or not is_out_of_memory(exc):
                raise
            raise EngineOutOfMemory(
                f"CUDA out of memory in {during} (max_seq_len={self.max_seq_len}) "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    # -- requests -----------------------------------------------------------------------------------------
    def sampling_params(self, **overrides: Any) -> SamplingParams:
        """The sampling settings of a call: `overrides` (None: not given) > the model's
        generation_config.json > qwen-tts's defaults. TypeError / ValueError as SamplingParams.merged."""
        return SamplingParams.merged(self.generate_defaults, **overrides)

    def normalize(self, request: SpeechRequest) -> SpeechRequest:
        """`request` with the voice rules applied (voice.py); ValueError for what this model refuses."""
        self._check_open()
        return self.voices.normalize(request)

    def _check_open(self) -> None:
        if self.model is None:
            raise RuntimeError("this Qwen3TTSCudaGraphs was closed")

    def _check_mode(self, mode: str, asked_by: str | None = None) -> None:
        self._check_open()
        self.voices.check_mode(mode, asked_by or METHOD_OF_MODE[mode])

    # -- text that does not fit ---------------------------------------------------------------------------
    def _count_tokens(self, text: str) -> int:
        return len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_positions_without_text(self, request: SpeechRequest) -> int:
        """Positions of `request`'s prompt with a one-token text: its voice's share of max_seq_len. One
        prefill per voice (remembered), not per request."""
        key = (request.mode, request.language, request.speaker, request.instruct, request.non_streaming_mode,
               id(request.voice_prompt))  # fmt: skip
        known = self._fixed_positions.get(key)
        if known is None or known[0] is not request.voice_prompt:
            if len(self._fixed_positions) >= FIXED_POSITIONS_CACHE:
                self._fixed_positions.pop(next(iter(self._fixed_positions)))
            prefill = build_prefill(self.model, self.processor, replace(request, text="."))
            known = (request.voice_prompt, prefill.inputs_embeds.shape[1])
            self._fixed_positions[key] = known
        return known[1]

    def text_token_budget(self, request: SpeechRequest) -> int:
        """The most text tokens one utterance of `request`'s voice takes within max_seq_len (with
        FRAMES_PER_TEXT_TOKEN frames each); ValueError if none fits."""
        fixed = self._prompt_positions_without_text(request)
        budget = (self.max_seq_len - fixed) // (1 + FRAMES_PER_TEXT_TOKEN)
        if budget < 1:
            raise ValueError(
                f"max_seq_len={self.max_seq_len} leaves no room for text: the prompt without text takes "
                f"{fixed} positions (a voice-clone reference counts); use a larger max_seq_len"
            )
        return budget

    def text_pieces(self, request: SpeechRequest) -> list[SpeechRequest]:
        """The (normalised) request itself if its text fits max_seq_len, else one request per piece of the
        split text."""
        budget = self.text_token_budget(request)
        if self._count_tokens(request.text) <= budget:
            return [request]
        pieces = split_text(request.text, budget, self._count_tokens)
        if not pieces:  # only whitespace: generate it as given, like qwen-tts
            return [request]
        return [replace(request, text=piece) for piece in pieces]

    # -- generation ---------------------------------------------------------------------------------------
    def _piece_frames(self, piece, sampling, cancel, stats: StreamStats, consumer_stream=None):
        """-> (prefill, iterator of (16,) frames for use on consumer_stream, if given; None before a wait
        for text) for one piece that fits: a whole-text request or a StreamPiece (streamed_text.py).
        (None, None) when a StreamPiece was cancelled before its prompt was known."""
        more_text = None
        if isinstance(piece, StreamPiece):
            prefill = piece.prefill()
            if prefill is None:
                return None, None
            more_text = None if prefill.text_complete else piece
            tokens = lambda: piece.tokens  # noqa: E731 - grows as the text arrives
        else:
            prefill = build_prefill(self.model, self.processor, piece)
            count = self._count_tokens(piece.text)
            tokens = lambda: count  # noqa: E731
        stats.text_tokens = tokens()
        guard = self.runaway
        frames = self.frame_generator.generate(
            prefill,
            sampling,
            cancel=cancel,
            stats=stats,
            consumer_stream=consumer_stream,
            more_text=more_text,
            max_frames=None if guard is None else lambda: guard.max_frames(tokens()),
        )
        return prefill, frames

    def synthesize(self, request: SpeechRequest) -> np.ndarray:
        """One request -> float32 waveform at 24 kHz, decoded exactly as qwen-tts decodes (text given in
        pieces: the stream's audio, which equals it to float rounding: module doc)."""
        return self._synthesize(self.normalize(request))

    def _synthesize(self, request: SpeechRequest) -> np.ndarray:
        if not request.text_is_whole:
            chunks = [chunk.pcm for chunk in self.stream(request, pcm_format="float32")]
            return np.concatenate(chunks)
        wavs = []
        for piece in self.text_pieces(request):
            prefill, frames = self._piece_frames(piece, piece.sampling, None, StreamStats())
            frame_list = list(frames)
            codes = (
                torch.stack(frame_list)
                if frame_list
                else torch.zeros(0, 16, dtype=torch.long, device=self.device)
            )
            if prefill.ref_code is None:
                wavs.append(decode_full(self.model.speech_tokenizer, codes))
                continue
            # ICL: decode reference ++ generated and cut the reference's share, exactly as qwen-tts does.
            ref_code = prefill.ref_code.to(codes.device)
            full = torch.cat([ref_code, codes])
            wav = decode_full(self.model.speech_tokenizer, full)
            cut = int(ref_code.shape[0] / max(full.shape[0], 1) * wav.shape[0])
            wavs.append(wav[cut:])
        return np.concatenate(wavs) if wavs else np.zeros(0, dtype=np.float32)

    def stream(
        self,
        request: SpeechRequest,
        *,
        first_chunk_frames: int = FIRST_CHUNK_FRAMES,
        chunk_frames: int = CHUNK_FRAMES,
        pcm_format: str = "int16",
        cancel: threading.Event | None = None,
        prefetch_chunks: int = 0,
    ) -> AudioStream:
        """Stream one request as PcmChunks (see audio_stream.py for chunking, the final chunk and prefetch).

        Validation errors (ValueError) are raised here, before any chunk.
        """
        check_chunking(first_chunk_frames, chunk_frames, pcm_format)
        start = time.perf_counter()
        request = self.normalize(request)
        cancel = cancel if cancel is not None else threading.Event()
        if request.text_is_whole:
            pieces = self.text_pieces(request)
            stats = StreamStats(text_length=len(request.text))
            streamed = None
        else:
            stats = StreamStats()
            streamed = StreamedText(self, request, feed_from(request.text), cancel, stats, start)
            pieces = streamed.pieces()
        audio = PieceAudio(self, pieces, request.sampling, cancel, stats, streamed)
        chunks = chunk_stream(
            audio.frames(),
            audio.decode,
            first_chunk_frames=first_chunk_frames,
            chunk_frames=chunk_frames,
            pcm_format=pcm_format,
            stats=stats,
            start=start,
            cancel=cancel,
        )
        return AudioStream(chunks, stats, cancel, prefetch_chunks=prefetch_chunks)
