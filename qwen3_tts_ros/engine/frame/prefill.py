"""The talker's prompt (prefill) for one request: text track + codec track, summed per position.

Mirrors `Qwen3TTSForConditionalGeneration.generate` of qwen-tts 0.1.1 at batch size 1 (no padding), so the
same weights see the same inputs. Notation: T(ids) = text_projection(text_embedding(ids)) (text track),
C(ids) = talker codec_embedding(ids) (codec track).

Layout (positions):
  [T(instruct)]                                     voice design / custom voice with instruct
  T(<|im_start|>assistant\\n)                        3 text-only positions
  [tts_pad]*(L-2) + tts_bos  +  C(codec prefix)[:-1]  codec prefix = think/lang tags, speaker, pad, bos
  then the text:
    streaming text (non_streaming_mode False): T(text[0]) + C(bos); the rest of the text (+ tts_eos) is
      fed one token per generated frame through `trailing_text_hidden`. Text that is still arriving
      (`known_ids` given) is this layout with the tokens known so far: the trailing rows stop where the
      known text does (no tts_eos) and the frame generator is given the rest as it comes
      (engine/streamed_text.py)
    non-streaming: (T(text) ++ tts_eos) + C(pad), then tts_pad + C(bos); trailing = tts_pad
    voice clone ICL: reference text + text against C(bos) ++ reference codes (see _icl_part)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..types import SpeechRequest
from ..voice import DEFAULT_NON_STREAMING_MODE


@dataclass
class Prefill:
    inputs_embeds: torch.Tensor  # (1, P, H) talker prompt
    trailing_text_hidden: torch.Tensor  # (1, T, H) text fed one position per generated frame
    tts_pad_embed: torch.Tensor  # (1, 1, H) text track once trailing_text_hidden is used up
    ref_code: torch.Tensor | None  # (R, 16) ICL reference codes (the decode prefix), else None
    text_complete: bool = True  # False: the text goes on past trailing_text_hidden (no tts_eos yet)


def assistant_text(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"


def reference_text(text: str) -> str:
    return f"<|im_start|>assistant\n{text}<|im_end|>\n"


def instruct_text(instruct: str) -> str:
    return f"<|im_start|>user\n{instruct}<|im_end|>\n"


def _tokenize(processor, text: str, device) -> torch.Tensor:
    ids = processor(text=text, return_tensors="pt", padding=True)["input_ids"]
    return (ids.unsqueeze(0) if ids.dim() == 1 else ids).to(device)


class _Tracks:
    """Embedding helpers on the model's own modules."""

    def __init__(self, model):
        self.talker = model.talker
        self.device = model.talker.device

    def text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.talker.text_projection(self.talker.get_text_embeddings()(ids))

    def codec(self, ids: list[int]) -> torch.Tensor:
        return self.talker.get_input_embeddings()(torch.tensor([ids], device=self.device, dtype=torch.long))

    def frames(self, codes: torch.Tensor) -> torch.Tensor:
        """(R, 16) codes -> (1, R, H): sum of the 16 codebook embeddings of each frame."""
        tables = [self.talker.get_input_embeddings()] + list(
            self.talker.code_predictor.get_input_embeddings()
        )
        per_book = [table(codes[:, k : k + 1]) for k, table in enumerate(tables)]
        return torch.cat(per_book, dim=1).sum(1).unsqueeze(0)


def _language_id(tc, language: str, speaker: str | None) -> int | None:
    lang = language.lower()
    language_id = None if lang == "auto" else tc.codec_language_id[lang]
    # Dialect speakers speak their dialect when the language is Chinese or left to the model.
    if lang in ("chinese", "auto") and speaker:
        dialect = tc.spk_is_dialect[speaker.lower()]
        if dialect is not False:
            language_id = tc.codec_language_id[dialect]
    return language_id


def _icl_part(tracks, tc, text_ids, ref_ids, ref_code, tts_pad, tts_eos, non_streaming_mode):
    """Voice clone in-context part: text = T(ref text ++ text) ++ tts_eos, codec = C(bos) ++ ref frames.
    tts_eos None: the text goes on (streaming layout only; the caller knows it covers the codec part)."""
    text_embed = tracks.text(torch.cat([ref_ids, text_ids], dim=-1))
    if tts_eos is not None:
        text_embed = torch.cat([text_embed, tts_eos], dim=1)
    codec_embed = torch.cat([tracks.codec([tc.codec_bos_id]), tracks.frames(ref_code)], dim=1)
    n_text, n_codec = text_embed.shape[1], codec_embed.shape[1]
    if tts_eos is None:
        return text_embed[:, :n_codec] + codec_embed, text_embed[:, n_codec:]
    if non_streaming_mode:
        part = torch.cat(
            [text_embed + tracks.codec([tc.codec_pad_id] * n_text), codec_embed + tts_pad], dim=1
        )
        return part, tts_pad
    if n_text > n_codec:
        return text_embed[:, :n_codec] + codec_embed, text_embed[:, n_codec:]
    text_embed = torch.cat([text_embed] + [tts_pad] * (n_codec - n_text), dim=1)
    return text_embed + codec_embed, tts_pad


def _icl_reference(prompt) -> bool:
    return prompt is not None and prompt.ref_code is not None and prompt.icl_mode


def prompt_text_tokens(processor, request: SpeechRequest) -> int:
    """How many of the text's tokens the streaming-text prompt holds: 1, or for voice clone ICL the text
    positions the reference codes leave after the reference text (0 when the reference text covers them).
    Text arriving in pieces can start generating once that many tokens (and at least one: it fixes the
    role prefix's last token, which a leading newline merges into) are known."""
    prompt = request.voice_prompt
    if not _icl_reference(prompt):
        return 1
    if not prompt.ref_text:
        raise ValueError("voice clone ICL mode needs the reference text (ref_text)")
    ref_tokens = len(processor.tokenizer(reference_text(prompt.ref_text))["input_ids"]) - 5
    return max(1, 1 + len(prompt.ref_code) - ref_tokens)


def _ids_without_sync(ids: list[int], device) -> torch.Tensor:
    """(1, n) ids on `device`. From pinned memory, so the host does not wait for the frames in flight (a
    pageable copy would wait for everything queued on the stream)."""
    host = torch.tensor([ids], dtype=torch.long)
    if torch.device(device).type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def text_rows(model, ids: list[int]) -> torch.Tensor:
    """(len(ids), H) text-track rows T(ids) on the model's device: text tokens that arrived after the
    prompt was built, fed one row per generated frame."""
    tracks = _Tracks(model)
    with torch.inference_mode():
        return tracks.text(_ids_without_sync(ids, tracks.device))[0]


def end_of_text_row(model) -> torch.Tensor:
    """(1, H) the tts_eos row that follows the last text row."""
    return text_rows(model, [model.config.tts_eos_token_id])


@torch.inference_mode()
def build_prefill(model, processor, request: SpeechRequest, known_ids: list[int] | None = None) -> Prefill:
    """Build the talker prompt for `request` on `model`'s device and dtype.

    request: normalised (voice.ModelVoices.normalize): only what its mode uses is set (speaker, instruct,
    voice prompt), its language and speaker are the model's.
    known_ids: for a text still arriving (request.text is then not used), the ids of assistant_text's
    start known so far: the 3 role-prefix tokens, then at least prompt_text_tokens(...) text tokens;
    streaming-text layout; the Prefill's text_complete is False.

    model: qwen-tts `Qwen3TTSForConditionalGeneration`; processor: its `Qwen3TTSProcessor`.
    """
    cfg, tc = model.config, model.config.talker_config
    tracks = _Tracks(model)
    device = tracks.device
    non_streaming_mode = request.non_streaming_mode
    if non_streaming_mode is None:
        non_streaming_mode = DEFAULT_NON_STREAMING_MODE[request.mode]
    text_complete = known_ids is None
    if text_complete:
        input_ids = _tokenize(processor, assistant_text(request.text), device)
    else:
        if non_streaming_mode:
            raise ValueError("text that is still arriving needs the streaming-text layout")
        input_ids = torch.tensor([known_ids], device=device, dtype=torch.long)
    instruct, speaker, prompt = request.instruct, request.speaker, request.voice_prompt
    speaker_embed = None
    if speaker:
        speaker_embed = tracks.codec([tc.spk_id[speaker.lower()]])
    elif prompt is not None and (prompt.x_vector_only_mode or prompt.icl_mode):
        speaker_embed = torch.as_tensor(prompt.spk_embedding).to(device).to(model.talker.dtype).view(1, 1, -1)

    tts_bos, tts_eos, tts_pad = tracks.text(
        torch.tensor([[cfg.tts_bos_token_id, cfg.tts_eos_token_id, cfg.tts_pad_token_id]], device=device)
    ).chunk(3, dim=1)

    language_id = _language_id(tc, request.language, speaker)
    if language_id is None:
        tags = [tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id]
    else:
        tags = [tc.codec_think_id, tc.codec_think_bos_id, language_id, tc.codec_think_eos_id]
    codec_parts = [tracks.codec(tags)]
    if speaker_embed is not None:
        codec_parts.append(speaker_embed)
    codec_parts.append(tracks.codec([tc.codec_pad_id, tc.codec_bos_id]))
    codec_prefix = torch.cat(codec_parts, dim=1)

    parts = []
    if instruct:
        parts.append(tracks.text(_tokenize(processor, instruct_text(instruct), device)))
    parts.append(tracks.text(input_ids[:, :3]))
    n_codec = codec_prefix.shape[1]
    parts.append(torch.cat((tts_pad.expand(-1, n_codec - 2, -1), tts_bos), dim=1) + codec_prefix[:, :-1])

    text = input_ids[:, 3:-5] if text_complete else input_ids[:, 3:]
    ref_code = None
    if _icl_reference(prompt):
        if not prompt.ref_text:
            raise ValueError("voice clone ICL mode needs the reference text (ref_text)")
        ref_ids = _tokenize(processor, reference_text(prompt.ref_text), device)
        ref_code = torch.as_tensor(prompt.ref_code).to(device=device, dtype=torch.long)
        eos = tts_eos if text_complete else None
        icl, trailing = _icl_part(
            tracks, tc, text, ref_ids[:, 3:-2], ref_code, tts_pad, eos, non_streaming_mode
        )
        parts.append(icl)
    elif non_streaming_mode:
        parts.append(
            torch.cat((tracks.text(text), tts_eos), dim=1)
            + tracks.codec([tc.codec_pad_id] * (text.shape[1] + 1))
        )
        parts.append(tts_pad + tracks.codec([tc.codec_bos_id]))
        trailing = tts_pad
    elif text_complete:
        parts.append(tracks.text(input_ids[:, 3:4]) + codec_prefix[:, -1:])
        trailing = torch.cat((tracks.text(input_ids[:, 4:-5]), tts_eos), dim=1)
    else:
        parts.append(tracks.text(input_ids[:, 3:4]) + codec_prefix[:, -1:])
        trailing = tracks.text(input_ids[:, 4:])

    return Prefill(
        inputs_embeds=torch.cat(parts, dim=1),
        trailing_text_hidden=trailing,
        tts_pad_embed=tts_pad,
        ref_code=ref_code,
        text_complete=text_complete,
    )
