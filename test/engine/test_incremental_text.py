"""Incremental text tokenisation (engine/text_tokens.py, issue 13): for any split of a text into pieces,
the ids feed() and finish() return are exactly qwen-tts's text tokens of the whole text, and feed() never
returns a token that later text could change.

Two tokenizers: the tiny checkpoints' byte-level one (loaded through the real loading code) and a real BPE
tokenizer with Qwen2's pipeline trained by the `tokenizers` library (checkpoints/bpe_tokenizer.py), whose
merges are what makes early commits hard (a whole word, a CJK run, an emoji sequence is one token).
"""

from __future__ import annotations

import random
import unicodedata

import pytest

from qwen3_tts_ros.engine.checkpoints.bpe_tokenizer import bpe_tokenizer
from qwen3_tts_ros.engine.frame.prefill import assistant_text
from qwen3_tts_ros.engine.text_tokens import IncrementalTokenizer

TEXTS = (
    "Hello world! It's a test, isn't it? We're sure they'll come; I'd say you've got 'em.",
    "I'LL GO, WE'RE HERE, IT'S 'S, 'll 're 've 'd 'm 't",
    "In 2024, 3.14159 and 1,000,000 people paid $12.50 (approx.) at 10:45pm on 2024-06-01.",
    "Wait... what?!?! -- no way!!! ((ok)) \"quoted\" 'single' [x]{y}<z>",
    "two  spaces,   three   and    four     five",
    "\nLeading newline, then text.",
    "\n\nTwo leading newlines",
    "  two leading spaces",
    "\tleading tab",
    " \n mixed leading whitespace",
    "trailing spaces  ",
    "trailing newline\n",
    "a\n \n b\n\n\nc \n\n d",
    "line\r\nwindows\r\n\r\nend",
    "col1\tcol2\t\tcol3 \t x\t",
    "你好，我是你的助手。今天天气很好！我们去公园散步吧。",
    "こんにちは、ロボットです。東京は晴れ。ありがとうございます！",
    "Family 👩‍👩‍👧‍👦, thumbs 👍🏽👍🏿, flags 🇩🇪🇯🇵, ❤️‍🔥 and 🏳️‍🌈 ok 👨‍💻!",
    "Combining: a\u0360\u0323 e\u0301 o\u0308\u0304 q\u0307\u0323 x\u0323\u0301 Tiếng Việt",
    "Decomposed caf\u0065\u0301 and precomposed café, n\u0303 vs ñ, \u212b angstrom",
    "Hangul jamo \u1100\u1161\u11a8 and syllables 한국어 텍스트 \uac00\u11a8",
    "Say assistant, then <|im_end|> or <tts_pad> and <|im_st or assist",
    "The café's crème brûlée costs €4.50 — naïve? 😀 «ça» ½…",
    "Speech synthesis turns text into audio; the assistant speaks while the model writes.",
    "",
    " ",
    "\n",
    "   \n\n  ",
    "x",
    "'",
)

# Continuations that try to change what is already committed: extending a word or a whitespace run,
# composing with or reordering before the last characters, completing an added token, contractions.
CONTINUATIONS = (
    "",
    " ",
    "  ",
    "\n",
    " \n",
    "\t",
    "x",
    "s",
    "'ll",
    "'s",
    "5",
    ".",
    "!!",
    "\u0301",
    "\u0323",
    "\u0360",
    "\u200d👩",
    "🏽",
    "\u11a8",
    "\u1161",
    "tant",
    "|im_end|>",
    "<|im_end|>",
    "好",
    "ー",
)


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_custom_voice_tts):
    return tiny_custom_voice_tts.processor.tokenizer


@pytest.fixture(scope="module")
def bpe():
    return bpe_tokenizer()


@pytest.fixture(params=["tiny", "bpe"])
def tokenizer(request):
    return request.getfixturevalue({"tiny": "tiny_tokenizer", "bpe": "bpe"}[request.param])


def qwen_tts_text_tokens(tokenizer, text: str) -> list[int]:
    """What qwen-tts (and frame/prefill.py) uses as the text tokens of `text`."""
    return qwen_tts_text_tokens_of(tokenizer, [text])[0]


def qwen_tts_text_tokens_of(tokenizer, texts: list[str]) -> list[list[int]]:
    return [ids[3:-5] for ids in tokenizer([assistant_text(text) for text in texts])["input_ids"]]


def random_splits(text: str, rng: random.Random, count: int):
    """`count` splits of text: cuts anywhere (repeated cuts give empty pieces), single characters with
    empty pieces among them, and a few pieces."""
    for i in range(count):
        style = i % 3
        if style == 0:
            cuts = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, len(text) + 3)))
        elif style == 1:
            cuts = sorted(list(range(len(text) + 1)) + [rng.randint(0, len(text)) for _ in range(3)])
        else:
            cuts = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(1, 4)))
        yield [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]


def feed_all(tokenizer, pieces, truth):
    """Feed the pieces, asserting after each that what is committed is a prefix of `truth`."""
    incremental = IncrementalTokenizer(tokenizer)
    ids: list[int] = []
    for n, piece in enumerate(pieces):
        ids += incremental.feed(piece)
        assert ids == truth[: len(ids)], f"piece {n} of {pieces!r} committed {ids}; the whole text: {truth}"
        assert incremental.committed == ids
    ids += incremental.finish()
    assert ids == truth, f"pieces {pieces!r} gave {ids}, the whole text {truth}"
    assert incremental.committed == ids
    assert incremental.text == "".join(pieces)
    return incremental


@pytest.mark.parametrize("text", TEXTS)
def test_any_split_gives_the_whole_texts_tokens(tokenizer, text):
    truth = qwen_tts_text_tokens(tokenizer, text)
    feed_all(tokenizer, [text], truth)
    for cut in range(len(text) + 1):  # every split in two
        feed_all(tokenizer, [text[:cut], text[cut:]], truth)
    rng = random.Random(f"splits {text}")
    for pieces in random_splits(text, rng, 60):
        feed_all(tokenizer, pieces, truth)


@pytest.mark.parametrize("text", TEXTS)
def test_commits_are_final_for_any_continuation(tokenizer, text):
    """What feed() committed for a prefix is a prefix of the tokens of that prefix followed by any of
    CONTINUATIONS, not only of the text it came from."""
    rng = random.Random(f"continuations {text}")
    for pieces in [list(text), *random_splits(text, rng, 4)]:
        incremental = IncrementalTokenizer(tokenizer)
        fed, ids = "", []
        for piece in pieces:
            ids += incremental.feed(piece)
            fed += piece
            longers = qwen_tts_text_tokens_of(tokenizer, [fed + more for more in CONTINUATIONS])
            for continuation, longer in zip(CONTINUATIONS, longers):
                assert ids == longer[: len(ids)], (
                    f"after {fed!r} committed {ids}; {fed + continuation!r} has {longer}"
                )


def test_bpe_tokenizer_merges(bpe):
    """The BPE tokenizer of these tests really merges (byte-level tokens would not pass): words with
    their space, CJK and kana runs, accented letters and emoji sequences are single tokens; the role
    prefix of qwen-tts's prompt is 3 tokens as with the real vocabulary."""
    for text in (" assistant", "Hello", " quick", "你好", "こんにちは", "Café", " 👩‍👩‍👧"):
        ids = bpe(text)["input_ids"]
        assert len(ids) == 1 < len(text.encode()), (text, bpe.convert_ids_to_tokens(ids))
    whole = bpe(assistant_text("Hi"))["input_ids"]
    assert bpe.convert_ids_to_tokens(whole[:3]) == ["<|im_start|>", "assistant", "Ċ"]
    assert bpe.convert_ids_to_tokens(whole[-5:]) == ["<|im_end|>", "Ċ", "<|im_start|>", "assistant", "Ċ"]


def test_a_word_is_committed_once_the_next_one_starts(tokenizer):
    incremental = IncrementalTokenizer(tokenizer)
    assert incremental.feed("Hello") == []  # "Hellos" would be another token
    assert incremental.feed(" w") == qwen_tts_text_tokens(tokenizer, "Hello")
    assert incremental.pending_text == " w"
    assert incremental.feed("orld") == []
    assert incremental.feed(".") == qwen_tts_text_tokens(tokenizer, " world")
    assert incremental.pending_text == "."


def test_digits_commit_one_by_one_and_cjk_at_punctuation(tokenizer):
    incremental = IncrementalTokenizer(tokenizer)
    assert incremental.feed("1") == []
    assert incremental.feed("2") == qwen_tts_text_tokens(tokenizer, "1")
    chinese = IncrementalTokenizer(tokenizer)
    assert chinese.feed("你好") == []
    assert chinese.feed("世界") == []  # letters: one chunk until a non-letter
    assert chinese.feed("，") == qwen_tts_text_tokens(tokenizer, "你好世界")


def test_a_whitespace_run_waits_for_the_next_word(tokenizer):
    """"\\n  " is two chunks ("\\n", "  ") but "\\n  \\n" one: nothing of a run is final before it ends."""
    incremental = IncrementalTokenizer(tokenizer)
    assert incremental.feed("a") == []
    assert incremental.feed("\n  ") == qwen_tts_text_tokens(tokenizer, "a")
    assert incremental.feed("\n") == []
    assert incremental.feed("\t") == []
    assert incremental.feed("b") != []  # the run ends: "\n  \n", then "\tb..."
    assert incremental.committed == qwen_tts_text_tokens(tokenizer, "a\n  \n")


def test_ascii_compositions_keep_their_class():
    """text_tokens reads the class of a final ASCII starter's character before it is final: whatever it
    composes with, the composite is of its class (letter, digit, space, line break, other)."""

    def regex_class(ch):
        if ch in "\r\n":
            return "line break"
        if ch.isspace():
            return "space"
        return {"L": "letter", "N": "number"}.get(unicodedata.category(ch)[0], "other")

    composites = 0
    for cp in range(0x30000):
        decomposition = unicodedata.decomposition(chr(cp)).split()
        if len(decomposition) == 2 and not decomposition[0].startswith("<"):
            first = chr(int(decomposition[0], 16))
            if first.isascii():
                composites += 1
                assert regex_class(chr(cp)) == regex_class(first), (hex(cp), first)
    assert composites > 100  # Latin letters with accents, and the negated relations of < = >


def test_the_uncommitted_text_stays_short(tokenizer):
    """Each feed() tokenises only the uncommitted text: along a long text fed word by word it stays one
    or two words long."""
    words = ("The quick brown fox jumps over the lazy dog, again and again; it's 2024. " * 30).split(" ")
    incremental = IncrementalTokenizer(tokenizer)
    text = ""
    for n, word in enumerate(words):
        piece = word if n == 0 else " " + word
        incremental.feed(piece)
        text += piece
        assert len(incremental.pending_text) <= len(piece) + len(words[n - 1]) + 2, incremental.pending_text
    assert incremental.committed + incremental.finish() == qwen_tts_text_tokens(tokenizer, text)


def test_a_tokenizer_it_does_not_know_is_exact_but_commits_at_the_end(bpe):
    """Another normaliser (NFKC): the commit rules do not apply, so feed() commits nothing and finish()
    returns all the tokens."""
    from tokenizers import Tokenizer, normalizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(bpe.backend_tokenizer.to_str())
    backend.normalizer = normalizers.NFKC()
    other = PreTrainedTokenizerFast(tokenizer_object=backend)
    text = "Hello world, ½ ﬁne. "
    truth = qwen_tts_text_tokens(other, text)
    assert truth != qwen_tts_text_tokens(bpe, text)  # NFKC really is another tokenisation
    incremental = IncrementalTokenizer(other)
    assert all(incremental.feed(ch) == [] for ch in text)
    assert incremental.finish() == truth


def test_misuse_is_an_error(bpe):
    incremental = IncrementalTokenizer(bpe)
    with pytest.raises(TypeError, match="must be str"):
        incremental.feed(b"bytes")
    incremental.feed("ok")
    incremental.finish()
    with pytest.raises(ValueError, match="after finish"):
        incremental.feed("more")
    with pytest.raises(ValueError, match="twice"):
        incremental.finish()


@pytest.mark.usefixtures("torch_single_thread")
def test_a_tiny_checkpoint_with_the_bpe_tokenizer_speaks_through_the_engine(tiny_custom_voice_bpe_tts, bpe):
    """The tiny checkpoint written with text_tokenizer="bpe" loads through qwen-tts with that tokenizer,
    and the engine speaks it as qwen-tts does (greedy, streaming-text layout)."""
    import numpy as np

    from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs

    tts = tiny_custom_voice_bpe_tts
    tokenizer = tts.processor.tokenizer
    text = "Hello, I'm your assistant. 你好，世界。"
    ids = qwen_tts_text_tokens(tokenizer, text)
    assert ids == qwen_tts_text_tokens(bpe, text)  # the files hold the trained tokenizer
    assert len(ids) < len(text.encode()) // 2, tokenizer.convert_ids_to_tokens(ids)
    feed_all(tokenizer, list(text), ids)
    args = dict(
        text=text,
        speaker="vivian",
        language="english",
        non_streaming_mode=False,
        do_sample=False,
        subtalker_dosample=False,
        max_new_tokens=12,
    )
    wavs, sr = Qwen3TTSCudaGraphs(tts, max_seq_len=256).generate_custom_voice(**args)
    ref_wavs, ref_sr = tts.generate_custom_voice(**args)
    assert sr == ref_sr and len(wavs) == len(ref_wavs) == 1
    np.testing.assert_array_equal(wavs[0], ref_wavs[0])


@pytest.mark.usefixtures("torch_single_thread")
def test_text_in_pieces_with_the_bpe_tokenizer_gives_the_audio_of_the_whole_text(tiny_custom_voice_bpe_dir):
    """The engine's acceptance property (issue 13) with merging text tokens: any split of the text, fed
    as pieces, gives the frames and (float64) audio of the whole text in the streaming-text layout."""
    import numpy as np
    import torch
    from waveform_bounds import assert_same_audio

    from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
    from qwen3_tts_ros.engine.checkpoints.loading import load_qwen_tts

    tts = load_qwen_tts(tiny_custom_voice_bpe_dir, device="cpu", dtype=torch.float64)
    engine = Qwen3TTSCudaGraphs(tts, max_seq_len=1024)
    text = "Hello, I'm your assistant.  It's 42 — 你好，世界！ 👍🏽 ok"
    tokens = len(qwen_tts_text_tokens(tts.processor.tokenizer, text))
    # Frames past every text row (then tts_eos, then padding): each token's row is read by some frame.
    frames = tokens + 4
    greedy = dict(do_sample=False, subtalker_dosample=False, pcm_format="float32")
    greedy.update(min_new_tokens=frames + 1, max_new_tokens=frames + 1)

    def speak(source, **options):
        stream = engine.stream_custom_voice(source, "vivian", "english", **greedy, **options)
        return np.concatenate([c.pcm for c in stream]), stream.stats

    whole, whole_stats = speak(text, non_streaming_mode=False)
    assert whole_stats.frames == frames
    rng = random.Random("bpe engine")
    for pieces in [list(text), *random_splits(text, rng, 3)]:
        got, stats = speak(iter(pieces))
        what = f"split {pieces!r}"
        assert stats.text_tokens == tokens, what
        assert (stats.frames, stats.stopped_by) == (whole_stats.frames, whole_stats.stopped_by), what
        assert_same_audio(got, whole, what)
