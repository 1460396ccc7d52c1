"""The byte-level Qwen2-style text tokenizer of the tiny checkpoints (tiny_checkpoint.py): 256 byte tokens,
then qwen-tts's special tokens, written as vocab.json + merges.txt + tokenizer_config.json."""

from __future__ import annotations

import json
import pathlib

# Text tokenizer: 256 byte tokens (ids 0..255), then these, in this order.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_text_bos_single>",
    "<|audio_pad|>",
)
ASSISTANT_TOKEN = "assistant"  # a normal added token, so the role prefix is exactly 3 tokens
TOKEN_ID = {tok: 256 + i for i, tok in enumerate((*SPECIAL_TOKENS, ASSISTANT_TOKEN))}
TEXT_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS) + 1


def token_config(token_id: dict[str, int]) -> dict[str, int]:
    """The top-level config.json entries that must match a tokenizer whose ids are `token_id`."""
    return dict(
        im_start_token_id=token_id["<|im_start|>"],
        im_end_token_id=token_id["<|im_end|>"],
        tts_pad_token_id=token_id["<tts_pad>"],
        tts_bos_token_id=token_id["<tts_text_bos>"],
        tts_eos_token_id=token_id["<tts_text_eod>"],
        assistant_token_id=token_id[ASSISTANT_TOKEN],
    )


TEXT_TOKEN_CONFIG = token_config(TOKEN_ID)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / Qwen2 byte-level mapping (byte -> printable unicode char)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_text_tokenizer(out_dir) -> None:
    """Write the byte-level Qwen2 tokenizer (vocab.json, merges.txt, tokenizer_config.json) and the
    processor's preprocessor_config.json into `out_dir`. Its special-token ids are TOKEN_ID (see
    TEXT_TOKEN_CONFIG for the matching top-level config.json entries)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    write_tokenizer_config(out, TOKEN_ID)


def write_tokenizer_config(out: pathlib.Path, added_tokens: dict[str, int]) -> None:
    """tokenizer_config.json of a Qwen2 tokenizer with these added tokens (content -> id; special unless
    "assistant") and the processor's preprocessor_config.json."""
    added = {
        str(token_id): {
            "content": tok,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": tok != ASSISTANT_TOKEN,
        }
        for tok, token_id in added_tokens.items()
    }
    tokenizer_config = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
        "processor_class": "Qwen3TTSProcessor",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2), encoding="utf-8")
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "padding_side": "left",
                "padding_value": 0.0,
                "processor_class": "Qwen3TTSProcessor",
                "return_attention_mask": True,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
