"""A real byte-level BPE text tokenizer with Qwen2's pipeline, trained here on a small built-in corpus.

Qwen3-TTS's vocabulary (151,643 merges) cannot be downloaded here, and the tiny checkpoints' byte-level
tokenizer (tiny_tokenizer.py) has no merges at all, so it cannot show what merging does to incremental
tokenisation (engine/text_tokens.py). This one has Qwen2's normaliser (NFC), pre-tokeniser (the Qwen2
regex, then bytes to symbols) and a BPE model trained with the `tokenizers` library on CORPUS: multi-byte
merges (Chinese, Japanese, accented letters, emoji), space-prefixed words, "assistant" as one token (the
role prefix of qwen-tts's prompt is then 3 tokens, as with the real vocabulary), and qwen-tts's special
tokens as added tokens.

`bpe_tokenizer()` gives it as a transformers fast tokenizer; `write_bpe_text_tokenizer(dir)` writes it as a
checkpoint's vocab.json + merges.txt + tokenizer_config.json (how the released models ship theirs) and
returns the text vocabulary size and the config.json token ids (tiny_checkpoint.py's text_tokenizer="bpe").
Training is deterministic; it takes well under a second.
"""

from __future__ import annotations

import functools
import json
import pathlib

from ..text_tokens import QWEN2_PATTERN
from .tiny_tokenizer import ASSISTANT_TOKEN, SPECIAL_TOKENS, token_config, write_tokenizer_config

VOCAB_SIZE = 1200  # the most the trainer may reach; it stops earlier when no pair is frequent enough

# Written for this file. Repeated words and phrases, so that the trainer merges whole (space-prefixed)
# words, CJK and kana pairs, accented letters and emoji sequences.
CORPUS = (
    "Hello, I'm your assistant. How can I help you today? I'll read the news, and you're welcome to ask.",
    "The robot's arm moved 12 centimetres; it's 3.5 kg and 2048 steps later it stopped at 10:45.",
    "We've been waiting for the answer... It'd be great if they'd say yes!!! Really?! (Maybe.)",
    "Please say: \"turn left\" -- then 'stop' -- then go forward 20 metres, and wait for me there.",
    "assistant assistant assistant: the assistant speaks while the language model is still writing.",
    "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again.",
    "Speech synthesis turns text into audio; streaming speech starts before the text is complete.",
    "你好，我是你的助手。今天天气很好，我们去公园散步吧。你好，世界！请问有什么可以帮你的吗？",
    "机器人正在说话。语言模型还在写字的时候，语音就已经开始了。你好你好，谢谢，再见。",
    "こんにちは、私はアシスタントです。今日はいい天気ですね。ありがとうございます。さようなら。",
    "ロボットが話しています。こんにちは、こんにちは。東京は晴れです。",
    "Café crème, naïve façade, déjà vu, über schön, Grüße aus München, señor niño, ½ … – — «ça».",
    "Emoji: 😀😀 👍👍🏽 👩‍👩‍👧 👨‍💻 ❤️ 🇩🇪 🇯🇵 — thumbs up 👍🏽, family 👩‍👩‍👧, coder 👨‍💻.",
    "Combining: a\u0301 e\u0301 o\u0308 n\u0303 a\u0360 x\u0323\u0301 — Vietnamese: Tiếng Việt rất hay.",
    "Lines\nwith\n\nnewlines and\ttabs\t\tand   spaces   between    words.\n  Indented line.\n",
)


def _train():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([line for line in CORPUS for _ in range(3)], trainer=trainer)
    if tokenizer.token_to_id(ASSISTANT_TOKEN) is None:
        raise RuntimeError("the BPE corpus no longer makes 'assistant' one token")
    return tokenizer


@functools.lru_cache(maxsize=1)
def _trained_json() -> str:
    return _train().to_str()


def bpe_tokenizer():
    """The trained tokenizer as a transformers fast tokenizer (a new object each call)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_json()),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )


def bpe_token_ids() -> dict[str, int]:
    """Id of each special token and of "assistant"."""
    vocab = json.loads(_trained_json())["model"]["vocab"]
    return {tok: vocab[tok] for tok in (*SPECIAL_TOKENS, ASSISTANT_TOKEN)}


def write_bpe_text_tokenizer(out_dir) -> tuple[int, dict[str, int]]:
    """Write vocab.json, merges.txt, tokenizer_config.json and preprocessor_config.json into `out_dir`.
    Returns (text vocabulary size, the config.json entries of its token ids)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = json.loads(_trained_json())["model"]
    vocab = model["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    token_id = bpe_token_ids()
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    # "assistant" is a learned token here, as in the real vocabulary: not an added token.
    write_tokenizer_config(out, {tok: i for tok, i in token_id.items() if tok != ASSISTANT_TOKEN})
    return len(vocab), token_config(token_id)

