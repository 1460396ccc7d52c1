"""`Qwen3TTSCudaGraphs`: qwen-tts's `Qwen3TTSModel` API on our CUDA-graph frame generator, plus streaming.

Same generation methods, arguments, defaults and return values `(list of float32 waveforms, 24000)` as
`qwen_tts.Qwen3TTSModel` (0.1.1). Differences, all deliberate:
  - list inputs are generated one item after the other (batch size 1; the graphs are captured for it);
  - text that does not fit `max_seq_len` is split at sentence boundaries and the pieces are generated in
    order and concatenated (never cut);
  - `**kwargs` accept only the sampling settings (a TypeError names the allowed ones);
  - a custom-voice speaker is required (qwen-tts lets None / "" through unvalidated);
  - reference audio given as URL / base64 is refused unless allow_download=True.

Streaming (`stream*`) yields exactly 1920 samples per generated frame; the codec carries its causal state
from chunk to chunk (codec_stream.py), so the stream equals the non-streaming waveform to float rounding
for any chunking (test_api_codec.py states the figure). Voice-clone ICL: qwen-tts cuts the reference part
proportionally (`int(ref/total * samples)`), which can keep one extra sample that the stream does not
have.

On CUDA the streaming codec runs on a side stream of the engine's (`codec_stream=True`, the default): a
chunk's decode and the copy of its samples to the host run there, ordered after the replays that made its
frames only, so the frames launched ahead keep generating on the main stream meanwhile, and the host waits
for the chunk's samples only. Time to first audio stays prefill + the first chunk's frames + one decode
(the first replay is launched alone, frame_generator.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from . import voice_prompt as vp
from .codec import StreamingDecoder, decode_full
from .codec_stream import CausalCodecDecoder
from .frame_generator import FrameGenerator
from .loading import load_qwen_tts
from .prefill import build_prefill
from .streaming import AudioStream, check_chunking, chunk_stream
from .text_split import split_text
from .types import SAMPLE_RATE, SamplingParams, SpeechRequest, StreamStats, VoicePrompt
from .voice import METHOD_OF_MODE, ModelVoices

# Budget for splitting long text: each text token is expected to take at most this many codec frames of
# speech (12.5 frames/s; one BPE token is ~0.1-0.3 s of speech); the frames share max_seq_len with the
# prompt.
FRAMES_PER_TEXT_TOKEN = 4


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _broadcast(name: str, values: list, n: int) -> list:
    if len(values) == 1 and n > 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"Batch size mismatch: text={n}, {name}={len(values)}")
    return values


class Qwen3TTSCudaGraphs:
    """Qwen3-TTS with a static-cache, CUDA-graph decode loop and streaming output (batch size 1).

    Not thread-safe: use one instance from one thread at a time (one generation runs at a time).
    """

    def __init__(
        self,
        tts,
        *,
        max_seq_len: int = 2048,
        use_cuda_graphs: bool = True,
        allow_download: bool = False,
        codec_stream: bool = True,
        **frame_options,
    ):
        """tts: a loaded `qwen_tts.Qwen3TTSModel` (its model, processor and generation defaults are used).

        codec_stream: on CUDA, decode streamed audio on a side stream, overlapped with frame generation
        (module doc); False decodes on the current stream, after the frames launched ahead. No effect on CPU.
        frame_options: FrameGenerator's launch_ahead, frames_per_replay, prefill_buckets, compile
        (frame_generator.py).
        """
        self.tts = tts
        self.model = tts.model
        self.processor = tts.processor
        self.generate_defaults = dict(tts.generate_defaults or {})
        self.voices = ModelVoices.of(tts)
        self.max_seq_len = int(max_seq_len)
        self.allow_download = allow_download
        self.frame_generator = FrameGenerator(
            self.model, max_seq_len=max_seq_len, use_cuda_graphs=use_cuda_graphs, **frame_options
        )
        self.device = self.frame_generator.device
        self.dtype = self.frame_generator.dtype
        # High priority: when a chunk's decode and frames launched ahead both wait for the GPU, the host
        # is waiting for the decode. (It also keeps this stream out of torch's low-priority pool, which
        # the frame generator's graphs were captured on; codec_stream.py says why that matters.)
        on_cuda = self.device.type == "cuda"
        self.decode_stream = torch.cuda.Stream(self.device, priority=-1) if codec_stream and on_cuda else None
        # One streaming codec state for the engine (one stream at a time); its CUDA graphs cover every
        # chunk length (graph sizes 1, 2, 4, 8 combined).
        self.codec = CausalCodecDecoder(
            self.model.speech_tokenizer.model.decoder,
            use_cuda_graphs=use_cuda_graphs,
            stream=self.decode_stream,
        )
        self.sample_rate = SAMPLE_RATE
        self.source: str | None = None  # the model directory or hub id, when loaded by from_pretrained
        self.memory_baseline_bytes = 0  # CUDA memory allocated before loading (open_engine measures it)

    @classmethod
    def from_pretrained(
        cls,
        model_name,
        device: str | torch.device = "cuda",
        dtype: torch.dtype = torch.bfloat16,
        max_seq_len: int = 2048,
        use_cuda_graphs: bool = True,
        allow_download: bool = False,
        frame_options: dict[str, Any] | None = None,
        codec_stream: bool = True,
        **kwargs,
    ) -> Qwen3TTSCudaGraphs:
        """Load a local model directory or hub id (hub ids only from the local cache unless allow_download).

        frame_options, codec_stream: as for the constructor. kwargs go to
        `qwen_tts.Qwen3TTSModel.from_pretrained` (e.g. attn_implementation, cache_dir, revision).
        """
        tts = load_qwen_tts(model_name, device=device, dtype=dtype, allow_download=allow_download, **kwargs)
        engine = cls(
            tts,
            max_seq_len=max_seq_len,
            use_cuda_graphs=use_cuda_graphs,
            allow_download=allow_download,
            codec_stream=codec_stream,
            **(frame_options or {}),
        )
        engine.source = str(model_name)
        return engine

    # -- model facts --------------------------------------------------------------------------------------
    @property
    def tts_model_type(self) -> str:
        return self.model.tts_model_type

    @property
    def tts_model_size(self) -> str:
        return self.model.tts_model_size

    @property
    def mode(self) -> str:
        """The generation mode this model supports: voice_clone, custom_voice or voice_design."""
        return self.voices.mode

    def get_supported_speakers(self) -> list[str] | None:
        return self.tts.get_supported_speakers()

    def get_supported_languages(self) -> list[str] | None:
        return self.tts.get_supported_languages()

    # -- lifecycle ----------------------------------------------------------------------------------------
    def capture(self) -> float:
        """Capture the CUDA graphs (frame generation, streaming codec) on the calling thread (no-op on CPU);
        returns seconds spent."""
        return self.frame_generator.capture() + self.codec.capture()

    def warmup(self, text: str = "Hello.", *, max_frames: int = 4) -> float:
        """Capture if needed, then run one short real generation + streaming decode; returns seconds spent."""
        start = time.perf_counter()
        self.capture()
        fields: dict[str, Any] = {}
        if self.mode == "custom_voice":
            fields["speaker"] = self.voices.first_speaker()
        elif self.mode == "voice_design":
            fields["instruct"] = "A calm voice."
        else:  # any speaker embedding will do to exercise the path
            enc_dim = self.model.config.speaker_encoder_config.enc_dim
            fields["voice_prompt"] = VoicePrompt(None, torch.zeros(enc_dim), True, False)
        request = SpeechRequest(
            text=text, mode=self.mode, sampling=SamplingParams(max_new_tokens=max_frames + 1), **fields
        )
        for _ in self.stream(request, first_chunk_frames=1, chunk_frames=2):
            pass
        return time.perf_counter() - start

    def close(self) -> None:
        """Release the model and the graphs (and the CUDA cache). The instance is unusable afterwards."""
        on_cuda = self.device.type == "cuda"
        self.frame_generator = None
        self.codec = None
        self.decode_stream = None
        self.model = None
        self.tts = None
        self.processor = None
        import gc

        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()

    # -- validation -----------------------------------------------------------------------------------------
    def _check_mode(self, mode: str, method: str) -> None:
        if self.model is None:
            raise RuntimeError("this Qwen3TTSCudaGraphs was closed")
        self.voices.check_mode(mode, method)

    def sampling_params(self, **overrides: Any) -> SamplingParams:
        """The sampling settings of a call: `overrides` (None: not given) > the model's
        generation_config.json > qwen-tts's defaults. TypeError / ValueError as SamplingParams.merged."""
        return SamplingParams.merged(self.generate_defaults, **overrides)

    # -- voice prompts --------------------------------------------------------------------------------------
    def create_voice_clone_prompt(self, ref_audio, ref_text=None, x_vector_only_mode=False) -> list:
        """As qwen-tts: -> list of `qwen_tts.VoiceClonePromptItem` (lists broadcast like qwen-tts)."""
        self._check_mode("voice_clone", "create_voice_clone_prompt")
        audios = _as_list(ref_audio)
        if isinstance(ref_audio, tuple):  # (array, sr) is one item, not a list
            audios = [ref_audio]
        texts = ref_text if isinstance(ref_text, list) else [ref_text] * len(audios)
        modes = (
            x_vector_only_mode if isinstance(x_vector_only_mode, list) else [x_vector_only_mode] * len(audios)
        )
        if len(texts) != len(audios) or len(modes) != len(audios):
            raise ValueError(
                f"Batch size mismatch: ref_audio={len(audios)}, ref_text={len(texts)}, "
                f"x_vector_only_mode={len(modes)}"
            )
        loaded = [vp.load_reference_audio(a, allow_download=self.allow_download) for a in audios]
        return self.tts.create_voice_clone_prompt(ref_audio=loaded, ref_text=texts, x_vector_only_mode=modes)

    def create_voice_prompt(
        self, ref_audio, ref_text: str | None = None, x_vector_only_mode: bool = False
    ) -> VoicePrompt:
        """Encode one reference once -> reusable VoicePrompt (see save_voice_prompt / load_voice_prompt)."""
        if isinstance(ref_audio, list):
            raise TypeError(
                "create_voice_prompt takes one reference audio; use create_voice_clone_prompt for lists"
            )
        return vp.from_prompt_item(self.create_voice_clone_prompt(ref_audio, ref_text, x_vector_only_mode)[0])

    @staticmethod
    def save_voice_prompt(prompt: VoicePrompt, path) -> None:
        vp.save_voice_prompt(vp.from_prompt_item(prompt), path)

    @staticmethod
    def load_voice_prompt(path) -> VoicePrompt:
        return vp.load_voice_prompt(path)

    def _voice_prompts(
        self, n, ref_audio, ref_text, x_vector_only_mode, voice_clone_prompt
    ) -> list[VoicePrompt]:
        if voice_clone_prompt is None:
            if ref_audio is None:
                raise ValueError("Either `voice_clone_prompt` or `ref_audio` must be provided.")
            items = self.create_voice_clone_prompt(ref_audio, ref_text, x_vector_only_mode)
        elif isinstance(voice_clone_prompt, dict):  # qwen-tts's low-level dict form (lists per field)
            items = [
                VoicePrompt(code, spk, bool(x), bool(icl), None)
                for code, spk, x, icl in zip(
                    voice_clone_prompt["ref_code"],
                    voice_clone_prompt["ref_spk_embedding"],
                    voice_clone_prompt["x_vector_only_mode"],
                    voice_clone_prompt["icl_mode"],
                )
            ]
        else:
            items = _as_list(voice_clone_prompt)
        return _broadcast("prompt", [vp.from_prompt_item(item) for item in items], n)

    # -- requests -------------------------------------------------------------------------------------------
    def voice_clone_requests(
        self,
        text,
        language=None,
        ref_audio=None,
        ref_text=None,
        x_vector_only_mode=False,
        voice_clone_prompt=None,
        non_streaming_mode=False,
        **kwargs,
    ) -> list[SpeechRequest]:
        self._check_mode("voice_clone", "generate_voice_clone")
        texts = _as_list(text)
        languages = _broadcast("language", _as_list(language), len(texts))
        prompts = self._voice_prompts(len(texts), ref_audio, ref_text, x_vector_only_mode, voice_clone_prompt)
        sampling = self.sampling_params(**kwargs)
        return [  # normalised here, before anything of a list is generated
            self.voices.normalize(SpeechRequest(
                text=t,
                mode="voice_clone",
                language=lang,
                voice_prompt=p,
                non_streaming_mode=non_streaming_mode,
                sampling=sampling,
            ))
            for t, lang, p in zip(texts, languages, prompts)
        ]

    def custom_voice_requests(
        self, text, speaker, language=None, instruct=None, non_streaming_mode=True, **kwargs
    ) -> list[SpeechRequest]:
        self._check_mode("custom_voice", "generate_custom_voice")
        texts = _as_list(text)
        languages = _broadcast("language", _as_list(language), len(texts))
        speakers = _broadcast("speaker", _as_list(speaker), len(texts))
        instructs = _broadcast("instruct", _as_list(instruct), len(texts))
        sampling = self.sampling_params(**kwargs)
        return [  # normalised here, before anything of a list is generated
            self.voices.normalize(SpeechRequest(
                text=t,
                mode="custom_voice",
                language=lang,
                speaker=spk,
                instruct=ins or None,
                non_streaming_mode=non_streaming_mode,
                sampling=sampling,
            ))
            for t, lang, spk, ins in zip(texts, languages, speakers, instructs)
        ]

    def voice_design_requests(
        self, text, instruct, language=None, non_streaming_mode=True, **kwargs
    ) -> list[SpeechRequest]:
        self._check_mode("voice_design", "generate_voice_design")
        texts = _as_list(text)
        languages = _broadcast("language", _as_list(language), len(texts))
        instructs = _broadcast("instruct", _as_list(instruct), len(texts))
        sampling = self.sampling_params(**kwargs)
        return [  # normalised here, before anything of a list is generated
            self.voices.normalize(SpeechRequest(
                text=t,
                mode="voice_design",
                language=lang,
                instruct=ins or None,
                non_streaming_mode=non_streaming_mode,
                sampling=sampling,
            ))
            for t, lang, ins in zip(texts, languages, instructs)
        ]

    def _check_request(self, request: SpeechRequest) -> SpeechRequest:
        """`request` with the voice rules applied (voice.py); ValueError for what this model refuses."""
        self._check_mode(request.mode, METHOD_OF_MODE.get(request.mode, request.mode))
        return self.voices.normalize(request)

    # -- text that does not fit -----------------------------------------------------------------------------
    def _count_tokens(self, text: str) -> int:
        return len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text_pieces(self, request: SpeechRequest) -> list[SpeechRequest]:
        """The request itself if its text fits max_seq_len, else one request per piece of the split text."""
        fixed = build_prefill(self.model, self.processor, replace(request, text=".")).inputs_embeds.shape[1]
        budget = (self.max_seq_len - fixed) // (1 + FRAMES_PER_TEXT_TOKEN)
        if budget < 1:
            raise ValueError(
                f"max_seq_len={self.max_seq_len} leaves no room for text: the prompt without text takes "
                f"{fixed} positions (a voice-clone reference counts); use a larger max_seq_len"
            )
        if self._count_tokens(request.text) <= budget:
            return [request]
        pieces = split_text(request.text, budget, self._count_tokens)
        if not pieces:  # only whitespace: generate it as given, like qwen-tts
            return [request]
        return [replace(request, text=piece) for piece in pieces]

    # -- generation -----------------------------------------------------------------------------------------
    def _piece_frames(self, request: SpeechRequest, cancel, stats: StreamStats, consumer_stream=None):
        """-> (prefill, iterator of (16,) frames for use on consumer_stream, if given) for one piece that
        fits."""
        prefill = build_prefill(self.model, self.processor, request)
        frames = self.frame_generator.generate(
            prefill, request.sampling, cancel=cancel, stats=stats, consumer_stream=consumer_stream
        )
        return prefill, frames

    def synthesize(self, request: SpeechRequest) -> np.ndarray:
        """One request -> float32 waveform at 24 kHz, decoded exactly as qwen-tts decodes."""
        request = self._check_request(request)
        wavs = []
        for piece in self.text_pieces(request):
            prefill, frames = self._piece_frames(piece, None, StreamStats())
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

    @torch.no_grad()
    def generate_voice_clone(
        self,
        text,
        language=None,
        ref_audio=None,
        ref_text=None,
        x_vector_only_mode=False,
        voice_clone_prompt=None,
        non_streaming_mode=False,
        **kwargs,
    ):
        requests = self.voice_clone_requests(
            text,
            language,
            ref_audio,
            ref_text,
            x_vector_only_mode,
            voice_clone_prompt,
            non_streaming_mode,
            **kwargs,
        )
        return [self.synthesize(r) for r in requests], SAMPLE_RATE

    @torch.no_grad()
    def generate_custom_voice(
        self, text, speaker, language=None, instruct=None, non_streaming_mode=True, **kwargs
    ):
        requests = self.custom_voice_requests(text, speaker, language, instruct, non_streaming_mode, **kwargs)
        return [self.synthesize(r) for r in requests], SAMPLE_RATE

    @torch.no_grad()
    def generate_voice_design(self, text, instruct, language=None, non_streaming_mode=True, **kwargs):
        requests = self.voice_design_requests(text, instruct, language, non_streaming_mode, **kwargs)
        return [self.synthesize(r) for r in requests], SAMPLE_RATE

    # -- streaming ------------------------------------------------------------------------------------------
    def stream(
        self,
        request: SpeechRequest,
        *,
        first_chunk_frames: int = 1,
        chunk_frames: int = 4,
        pcm_format: str = "int16",
        cancel: threading.Event | None = None,
        prefetch_chunks: int = 0,
    ) -> AudioStream:
        """Stream one request as PcmChunks (see streaming.py for chunking, the final chunk and prefetch).

        Validation errors (ValueError) are raised here, before any chunk.
        """
        check_chunking(first_chunk_frames, chunk_frames, pcm_format)
        start = time.perf_counter()
        request = self._check_request(request)
        pieces = self.text_pieces(request)
        cancel = cancel if cancel is not None else threading.Event()
        stats = StreamStats(text_length=len(request.text))
        # Each piece of a split text is its own utterance for the talker, so it gets its own decoder (as
        # synthesize() decodes each piece on its own); a chunk may span two pieces. The decoders take the
        # engine's codec state in turn, each at its first frame (after the previous piece's last one).
        decoders: list[StreamingDecoder] = []
        piece_of_frame: list[int] = []
        decoded = 0
        side = self.decode_stream

        def frames() -> Iterator[torch.Tensor]:
            for piece in pieces:
                piece_stats = StreamStats()
                prefill, piece_frames = self._piece_frames(piece, cancel, piece_stats, side)
                if side is not None:
                    # The prefix (voice-clone reference codes) was put on the device on the main stream.
                    # Nothing of this piece is launched yet, so waiting for all of that stream waits for
                    # no frames; the prefix's memory is not reused before the side stream read it.
                    side.wait_stream(torch.cuda.current_stream(self.device))
                    if prefill.ref_code is not None:
                        prefill.ref_code.record_stream(side)
                decoders.append(StreamingDecoder(self.codec, prefix=prefill.ref_code))
                try:
                    for frame in piece_frames:
                        stats.frames += 1
                        stats.frame_ms.append(piece_stats.frame_ms[-1])
                        piece_of_frame.append(len(decoders) - 1)
                        yield frame
                finally:
                    piece_frames.close()  # at once, not when collected: the FrameGenerator is free again
                    stats.prefill_ms += piece_stats.prefill_ms
                    stats.stopped_by = piece_stats.stopped_by or stats.stopped_by
                if cancel.is_set():
                    return

        def decode(chunk_frames: list[torch.Tensor]) -> np.ndarray:
            nonlocal decoded
            with torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
                codes = torch.stack(chunk_frames)  # where the frames were handed out, as the codec reads them
            owners = piece_of_frame[decoded : decoded + len(codes)]
            decoded += len(codes)
            wavs, begin = [], 0
            for end in range(1, len(codes) + 1):
                if end == len(codes) or owners[end] != owners[begin]:
                    wavs.append(decoders[owners[begin]].decode(codes[begin:end]))
                    begin = end
            return np.concatenate(wavs)

        chunks = chunk_stream(
            frames(),
            decode,
            first_chunk_frames=first_chunk_frames,
            chunk_frames=chunk_frames,
            pcm_format=pcm_format,
            stats=stats,
            start=start,
            cancel=cancel,
        )
        return AudioStream(chunks, stats, cancel, prefetch_chunks=prefetch_chunks)

    def _stream_one(self, requests: list[SpeechRequest], stream_kwargs) -> AudioStream:
        if len(requests) != 1:
            raise ValueError("streaming takes one text (a str), not a list")
        return self.stream(requests[0], **stream_kwargs)

    def stream_voice_clone(
        self,
        text: str,
        language=None,
        ref_audio=None,
        ref_text=None,
        x_vector_only_mode=False,
        voice_clone_prompt=None,
        non_streaming_mode=False,
        *,
        first_chunk_frames=1,
        chunk_frames=4,
        pcm_format="int16",
        cancel=None,
        prefetch_chunks=0,
        **kwargs,
    ) -> AudioStream:
        requests = self.voice_clone_requests(
            text,
            language,
            ref_audio,
            ref_text,
            x_vector_only_mode,
            voice_clone_prompt,
            non_streaming_mode,
            **kwargs,
        )
        return self._stream_one(
            requests,
            dict(
                first_chunk_frames=first_chunk_frames,
                chunk_frames=chunk_frames,
                pcm_format=pcm_format,
                cancel=cancel,
                prefetch_chunks=prefetch_chunks,
            ),
        )

    def stream_custom_voice(
        self,
        text: str,
        speaker,
        language=None,
        instruct=None,
        non_streaming_mode=True,
        *,
        first_chunk_frames=1,
        chunk_frames=4,
        pcm_format="int16",
        cancel=None,
        prefetch_chunks=0,
        **kwargs,
    ) -> AudioStream:
        requests = self.custom_voice_requests(text, speaker, language, instruct, non_streaming_mode, **kwargs)
        return self._stream_one(
            requests,
            dict(
                first_chunk_frames=first_chunk_frames,
                chunk_frames=chunk_frames,
                pcm_format=pcm_format,
                cancel=cancel,
                prefetch_chunks=prefetch_chunks,
            ),
        )

    def stream_voice_design(
        self,
        text: str,
        instruct,
        language=None,
        non_streaming_mode=True,
        *,
        first_chunk_frames=1,
        chunk_frames=4,
        pcm_format="int16",
        cancel=None,
        prefetch_chunks=0,
        **kwargs,
    ) -> AudioStream:
        requests = self.voice_design_requests(text, instruct, language, non_streaming_mode, **kwargs)
        return self._stream_one(
            requests,
            dict(
                first_chunk_frames=first_chunk_frames,
                chunk_frames=chunk_frames,
                pcm_format=pcm_format,
                cancel=cancel,
                prefetch_chunks=prefetch_chunks,
            ),
        )
