"""split_text: pieces within the budget, split at the most natural boundary, nothing ever dropped."""

import re

import pytest

from qwen3_tts_ros.engine.text_split import split_text


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _check(text, max_len, length=len):
    pieces = split_text(text, max_len, length)
    assert all(length(p) <= max_len for p in pieces), pieces
    assert all(p == p.strip() and p for p in pieces)
    assert _squash("".join(pieces)) == _squash(text)  # never cut, order kept
    return pieces


def test_fitting_text_is_one_piece():
    assert split_text("  Hello there.  ", 100) == ["Hello there."]
    assert split_text("   ", 10) == []


def test_splits_at_sentence_ends_first():
    text = "First sentence here. Second one! Third one? Fourth; fifth.\nSixth line"
    pieces = _check(text, 25)
    assert pieces[0] == "First sentence here."
    assert all(p[-1] in ".!?;e" for p in pieces)  # every piece ends at a sentence end (last: end of text)


def test_packs_sentences_greedily():
    text = "A b. C d. E f. G h."
    assert _check(text, 10) == ["A b. C d.", "E f. G h."]


def test_decimal_point_is_not_a_sentence_end():
    pieces = _check("Pi is 3.14159 and e is 2.71828 exactly.", 25)
    assert any("3.14159" in p for p in pieces) and any("2.71828" in p for p in pieces)


def test_cjk_sentence_marks():
    text = "今天天气很好。我们去公园吧！你觉得怎么样？好的；走吧。"
    pieces = _check(text, 8)
    assert pieces == ["今天天气很好。", "我们去公园吧！", "你觉得怎么样？", "好的；走吧。"]


def test_falls_back_to_commas_then_whitespace():
    text = "one two three four, five six seven eight, nine ten eleven twelve"
    pieces = _check(text, 25)
    assert pieces[0] == "one two three four,"
    pieces = _check("alpha beta gamma delta epsilon zeta eta theta", 12)
    assert all(" " not in p or len(p) <= 12 for p in pieces)
    assert "alpha beta" in pieces


def test_hard_split_only_for_an_overlong_word():
    word = "x" * 30
    pieces = _check(f"short words {word} end.", 8)
    assert "short" in " ".join(pieces) and all(len(p) <= 8 for p in pieces)
    assert sum(p.count("x") for p in pieces) == 30


def test_token_length_function():
    def tokens(s):  # a crude tokenizer: one token per word
        return len(s.split())

    text = " ".join(f"Sentence number {i} has six words." for i in range(10))
    pieces = _check(text, 13, tokens)
    assert len(pieces) == 5 and all(tokens(p) == 12 for p in pieces)


def test_rejects_bad_budget():
    with pytest.raises(ValueError):
        split_text("abc", 0)
