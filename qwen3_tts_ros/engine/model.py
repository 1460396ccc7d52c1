"""`Qwen3TTSCudaGraphs`: qwen-tts's `Qwen3TTSModel` API on the engine core (core.py), plus streaming.

Same generation methods, arguments, defaults and return values `(list of float32 waveforms, 24000)` as
`qwen_tts.Qwen3TTSModel` (0.1.1). Differences, all deliberate:
  - list inputs are generated one item after the other (batch size 1; the graphs are captured for it);
  - text that does not fit `max_seq_len` is split at sentence boundaries and the pieces are generated in
    order and concatenated (never cut);
  - `**kwargs` accept only the sampling settings (a TypeError names the allowed ones), and for `stream_*`
    also stream()'s options (first_chunk_frames, chunk_frames, pcm_format, cancel, prefetch_chunks);
  - a custom-voice speaker is required (qwen-tts lets None / "" through unvalidated);
  - reference audio given as URL / base64 is refused unless allow_download=True.

Every method here turns qwen-tts's arguments into normalised SpeechRequests (`*_requests`) and hands them to
the core: `generate_*` synthesize each, `stream_*` stream the one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from . import voice_prompt as vp
from .audio.audio_stream import AudioStream
from .checkpoints.loading import load_qwen_tts
from .core import SpeechEngine
from .frame.options import FrameOptions
from .types import SAMPLE_RATE, RunawayGuard, SpeechRequest, VoicePrompt

STREAM_OPTIONS = ("first_chunk_frames", "chunk_frames", "pcm_format", "cancel", "prefetch_chunks")


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _one_text(text) -> list:
    """A stream's one text as the one-element batch the *_requests methods take (a list of pieces is one
    text, not a batch)."""
    return [text]


def _broadcast(name: str, values: list, n: int) -> list:
    if len(values) == 1 and n > 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"Batch size mismatch: text={n}, {name}={len(values)}")
    return values


class Qwen3TTSCudaGraphs(SpeechEngine):
    """Qwen3-TTS with a static-cache, CUDA-graph decode loop and streaming output (batch size 1), with
    qwen-tts's API. Not thread-safe: use one instance from one thread at a time."""

    @classmethod
    def from_pretrained(
        cls,
        model_name,
        device: str | torch.device = "cuda",
        dtype: torch.dtype = torch.bfloat16,
        max_seq_len: int | None = None,
        use_cuda_graphs: bool | None = None,
        allow_download: bool = False,
        frame_options: FrameOptions | Mapping[str, Any] | None = None,
        codec_stream: bool = True,
        runaway: RunawayGuard | None = None,
        **kwargs,
    ) -> Qwen3TTSCudaGraphs:
        """Load a local model directory or hub id (hub ids only from the local cache unless allow_download).

        max_seq_len (None: 2048), use_cuda_graphs (None: on), frame_options, codec_stream, runaway: as for
        the constructor (core.py). kwargs go to
        `qwen_tts.Qwen3TTSModel.from_pretrained` (e.g. attn_implementation, cache_dir, revision).
        """
        tts = load_qwen_tts(model_name, device=device, dtype=dtype, allow_download=allow_download, **kwargs)
        engine = cls(
            tts,
            max_seq_len=max_seq_len,
            use_cuda_graphs=use_cuda_graphs,
            allow_download=allow_download,
            codec_stream=codec_stream,
            runaway=runaway,
            frame_options=frame_options,
        )
        engine.source = str(model_name)
        return engine

    def get_supported_speakers(self) -> list[str] | None:
        return self.tts.get_supported_speakers()

    def get_supported_languages(self) -> list[str] | None:
        return self.tts.get_supported_languages()

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
    def _requests(self, mode: str, text, non_streaming_mode, sampling: dict, **fields) -> list[SpeechRequest]:
        """One normalised request per text (all of them before anything is generated); each field is one
        value for every text or a list of one per text. non_streaming_mode None: qwen-tts's default of the
        method for a str (voice.py), the streaming-text layout for text in pieces."""
        self._check_mode(mode)
        texts = _as_list(text)
        columns = {name: _broadcast(name, _as_list(value), len(texts)) for name, value in fields.items()}
        settings = self.sampling_params(**sampling)
        return [
            self.normalize(
                SpeechRequest(
                    text=t,
                    mode=mode,
                    non_streaming_mode=non_streaming_mode,
                    sampling=settings,
                    **{name: column[i] for name, column in columns.items()},
                )
            )
            for i, t in enumerate(texts)
        ]

    def voice_clone_requests(  # fmt: skip
        self, text, language=None, ref_audio=None, ref_text=None, x_vector_only_mode=False,
        voice_clone_prompt=None, non_streaming_mode=False, **kwargs,
    ) -> list[SpeechRequest]:
        self._check_mode("voice_clone")
        n = len(_as_list(text))
        prompts = self._voice_prompts(n, ref_audio, ref_text, x_vector_only_mode, voice_clone_prompt)
        return self._requests(
            "voice_clone", text, non_streaming_mode, kwargs, language=language, voice_prompt=prompts
        )

    def custom_voice_requests(
        self, text, speaker, language=None, instruct=None, non_streaming_mode=None, **kwargs
    ) -> list[SpeechRequest]:
        fields = dict(language=language, speaker=speaker, instruct=instruct)
        return self._requests("custom_voice", text, non_streaming_mode, kwargs, **fields)

    def voice_design_requests(
        self, text, instruct, language=None, non_streaming_mode=None, **kwargs
    ) -> list[SpeechRequest]:
        fields = dict(language=language, instruct=instruct)
        return self._requests("voice_design", text, non_streaming_mode, kwargs, **fields)

    # -- generation -----------------------------------------------------------------------------------------
    def _generate(self, requests: list[SpeechRequest]):
        return [self._synthesize(r) for r in requests], SAMPLE_RATE

    @torch.no_grad()
    def generate_voice_clone(  # fmt: skip
        self, text, language=None, ref_audio=None, ref_text=None, x_vector_only_mode=False,
        voice_clone_prompt=None, non_streaming_mode=False, **kwargs,
    ):
        prompt = dict(ref_audio=ref_audio, ref_text=ref_text, x_vector_only_mode=x_vector_only_mode)
        return self._generate(
            self.voice_clone_requests(
                text, language, **prompt, voice_clone_prompt=voice_clone_prompt,
                non_streaming_mode=non_streaming_mode, **kwargs,
            )
        )  # fmt: skip

    @torch.no_grad()
    def generate_custom_voice(
        self, text, speaker, language=None, instruct=None, non_streaming_mode=None, **kwargs
    ):
        return self._generate(
            self.custom_voice_requests(text, speaker, language, instruct, non_streaming_mode, **kwargs)
        )

    @torch.no_grad()
    def generate_voice_design(self, text, instruct, language=None, non_streaming_mode=None, **kwargs):
        requests = self.voice_design_requests(text, instruct, language, non_streaming_mode, **kwargs)
        return self._generate(requests)

    # -- streaming ------------------------------------------------------------------------------------------
    def _stream_one(self, make_requests, kwargs: dict[str, Any]) -> AudioStream:
        """make_requests(**sampling kwargs) -> requests; the one request streamed with stream()'s options."""
        options = {name: kwargs.pop(name) for name in STREAM_OPTIONS if name in kwargs}
        requests = make_requests(**kwargs)
        if len(requests) != 1:
            raise ValueError("streaming takes one text: a str, or an iterable of its pieces")
        return self.stream(requests[0], **options)  # normalised again there: idempotent, cheap

    def stream_voice_clone(  # fmt: skip
        self, text: str | Iterable[str], language=None, ref_audio=None, ref_text=None,
        x_vector_only_mode=False, voice_clone_prompt=None, non_streaming_mode=None, **kwargs,
    ) -> AudioStream:
        """As generate_voice_clone, streamed; kwargs: sampling settings and stream()'s options. text: a str
        or its pieces as they are written (SpeechRequest.text)."""
        prompt = dict(ref_audio=ref_audio, ref_text=ref_text, x_vector_only_mode=x_vector_only_mode)
        return self._stream_one(
            lambda **sampling: self.voice_clone_requests(
                _one_text(text), language, **prompt, voice_clone_prompt=voice_clone_prompt,
                non_streaming_mode=non_streaming_mode, **sampling,
            ),
            kwargs,
        )  # fmt: skip

    def stream_custom_voice(  # fmt: skip
        self, text: str | Iterable[str], speaker, language=None, instruct=None, non_streaming_mode=None,
        **kwargs,
    ) -> AudioStream:
        """As generate_custom_voice, streamed; kwargs: sampling settings and stream()'s options. text: a str
        or its pieces as they are written (SpeechRequest.text; non_streaming_mode None: True for a str)."""
        return self._stream_one(
            lambda **sampling: self.custom_voice_requests(
                _one_text(text), speaker, language, instruct, non_streaming_mode, **sampling
            ),
            kwargs,
        )

    def stream_voice_design(  # fmt: skip
        self, text: str | Iterable[str], instruct, language=None, non_streaming_mode=None, **kwargs
    ) -> AudioStream:
        """As generate_voice_design, streamed; kwargs: sampling settings and stream()'s options. text: a str
        or its pieces as they are written (SpeechRequest.text; non_streaming_mode None: True for a str)."""
        return self._stream_one(
            lambda **sampling: self.voice_design_requests(
                _one_text(text), instruct, language, non_streaming_mode, **sampling
            ),
            kwargs,
        )
