"""Incremental tokenisation of a text that arrives in pieces (an LLM's stream), exact and never retracting.

`IncrementalTokenizer(tokenizer).feed(piece)` returns the text token ids that no later text can change;
`finish()` returns the rest once the text has ended. For any split of a text into pieces, everything they
return, concatenated, is exactly qwen-tts's text tokens of the whole text:
`tokenizer(assistant_text(text))["input_ids"][3:-5]` (frame/prefill.py).

Why a token can be committed (Qwen2's fast tokenizer, the one qwen-tts's processor carries): the string is
first split at added tokens (<|im_start|>, ..., and any other added token, matched leftmost-longest on the
raw text); each part between them is NFC-normalised, cut into chunks by the Qwen2 regex, and each chunk is
byte-level BPE'd on its own. So the tokens before a position c of the text are final once
  - no added-token match can cross c (no text before c is the start of an unfinished added token),
  - the NFC of the text before c cannot change (c splits the normalisation: the character at c is a starter
    that cannot compose with what precedes it, or the character before c composes with nothing), and
  - c is a chunk start and every chunk before c is decided by characters already known and final: the regex
    has no look-behind, and the match at q reads at most up to its end, the end of the whitespace run at q
    and, for an apostrophe, two characters further (its alternatives, in order, stop there). A chunk inside
    a whitespace run is not final before the run ends: "\\n  " chunks as "\\n", "  " but "\\n  \\n" is one.
Tokenising the rest of the text on its own from such a c gives the same tokens as tokenising it in place,
so after a commit only the uncommitted text is tokenised again (the role prefix "assistant\\n" of
assistant_text only matters until the first commit: a text starting with a newline can merge with it).

What that means for latency: a word is committed when the character after it is known (the space of the
next word, punctuation); digits one by one; a whitespace run when the next word starts; text without
spaces (Chinese, Japanese) at its punctuation, because Qwen2's regex makes a run of letters one chunk.

A tokenizer without that structure (a slow tokenizer, another normaliser or pre-tokeniser, added tokens
that strip or normalise) is still exact, just not early: feed() then commits nothing and finish() returns
all the tokens.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata

from .frame.prefill import assistant_text

ROLE_TOKENS = 3  # qwen-tts takes the text tokens of assistant_text(text) as ids[3:-5]
END_TOKENS = 5
_MARKER = "\0"
PREFIX, SUFFIX = assistant_text(_MARKER).split(_MARKER)  # what assistant_text puts around the text

# Qwen2's pre-tokeniser regex (transformers' Qwen2 converter and tokenization_qwen2, tokenizers' JSON form).
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# The pre-tokeniser the commit rules are for, in tokenizers' JSON form: that regex, then bytes to symbols.
_QWEN2_SPLIT = {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False}
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}

# Whitespace as the regex's \s may see it: Python's isspace() plus characters some Unicode versions or
# engines count. A superset only makes whitespace runs look longer, so commits later, never wrong.
_EXTRA_SPACES = frozenset("\u180e\u200b\ufeff")

# Canonical compositions below this code point are read from unicodedata; characters at or above it (no
# decompositions there in any Unicode version so far) are treated as unknown: no commit next to them.
_TABLE_LIMIT = 0x30000

_ASSIGNED = 1  # assigned in this Python's Unicode version
_STARTER = 2  # its decomposition starts with a starter that composes with nothing before it
_INERT = 4  # a starter with no decomposition that composes with nothing: splits the NFC after it too


@functools.lru_cache(maxsize=1)
def _composition_pairs() -> tuple[frozenset[int], frozenset[int]]:
    """Code points that are the first / the second of a canonical composition pair. Composition
    exclusions are included (a superset: commits later, never wrong); Hangul L+V and LV+T algorithmically."""
    firsts, seconds = set(), set()
    for cp in range(_TABLE_LIMIT):
        decomposition = unicodedata.decomposition(chr(cp))
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                firsts.add(int(parts[0], 16))
                seconds.add(int(parts[1], 16))
    firsts.update(range(0x1100, 0x1113))  # Hangul leading consonants
    firsts.update(range(0xAC00, 0xD7A4))  # Hangul syllables (LV + trailing consonant)
    seconds.update(range(0x1161, 0x1176))  # vowels
    seconds.update(range(0x11A7, 0x11C3))  # trailing consonants
    return frozenset(firsts), frozenset(seconds)


@functools.lru_cache(maxsize=8192)
def _char_flags(ch: str) -> int:
    """_ASSIGNED / _STARTER / _INERT of one character.

    Unicode's normalisation stability makes these hold in any later Unicode version (the tokenizers
    library may use a newer one than this Python): combining classes and decompositions of assigned
    characters never change, and no new composition of two assigned characters appears. A character this
    Python does not know is none of these, and no commit happens right after it either (see _splits)."""
    cp = ord(ch)
    if cp < 0x80:
        firsts, _ = _composition_pairs()
        return _ASSIGNED | _STARTER | (0 if cp in firsts else _INERT)
    if cp >= _TABLE_LIMIT or unicodedata.category(ch) == "Cn":
        return 0
    firsts, seconds = _composition_pairs()
    lead = ord(unicodedata.normalize("NFD", ch)[0])
    flags = _ASSIGNED
    if unicodedata.combining(chr(lead)) == 0 and lead not in seconds:
        flags |= _STARTER
        if unicodedata.decomposition(ch)[:1] in ("", "<") and cp not in firsts:  # no canonical one
            flags |= _INERT
    return flags


def _splits(text: str, x: int) -> bool:
    """Whether NFC(text[:x] + s) == NFC(text[:x]) + NFC(s) for every s that starts with text[x:]
    (0 < x <= len(text); at x == len(text), for every s).

    A character unknown here may be known to the tokenizers library's newer Unicode, and a new character
    may compose with an old one: no split next to one. (At the end of the text the next character is not
    known yet; that one exception is what committing "word" on "word " rests on.)"""
    before = _char_flags(text[x - 1])
    after = _char_flags(text[x]) if x < len(text) else _ASSIGNED
    if not before & _ASSIGNED or not after & _ASSIGNED:
        return False
    return bool(before & _INERT or after & _STARTER)


def _is_space(ch: str) -> bool:
    return ch.isspace() or ch in _EXTRA_SPACES


class _Normalized:
    """The normalised text of text[a:b], built piece by piece between NFC split points, and the positions
    of those split points in it (the cut candidates)."""

    def __init__(self, text: str, a: int, b: int, normalize):
        self._a = a
        # NFC leaves ASCII as it is and splits between any two ASCII characters; without a normaliser
        # every position splits.
        self._identity = normalize is None or text[a:b].isascii()
        if self._identity:
            self.text = text[a:b]
            return
        self._n_of: dict[int, int] = {}
        self._x_of: dict[int, int] = {}
        pieces, start, n = [], a, 0
        for x in range(a + 1, b + 1):
            if x == b or _splits(text, x):
                self._n_of[start], self._x_of[n] = n, start
                piece = normalize(text[start:x])
                pieces.append(piece)
                n += len(piece)
                start = x
        self._n_of[b], self._x_of[n] = n, b
        self.text = "".join(pieces)

    def position(self, x: int) -> int:
        """Position in the normalised text of x, a split point of the original text (or a or b)."""
        return x - self._a if self._identity else self._n_of[x]

    def original(self, n: int) -> int | None:
        """The original position of normalised position n when it is a split point, else None."""
        return n + self._a if self._identity else self._x_of.get(n)


class _Qwen2Plan:
    """Where the text may be cut, for a fast tokenizer with Qwen2's pipeline (see the module docstring)."""

    def __init__(self, backend, added_tokens: list[str]):
        normalizer = backend.normalizer
        self._normalize = None if normalizer is None else normalizer.normalize_str
        self._pre_tokenize = backend.pre_tokenizer.pre_tokenize_str
        # Leftmost-longest match of the added tokens (the tokenizers library's rule): a regex alternation
        # is leftmost-first, so longest first.
        ordered = sorted(set(added_tokens), key=len, reverse=True)
        self._added = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._added_prefixes = {t[:k] for t in ordered for k in range(1, len(t))}
        self._longest_added = max(map(len, ordered), default=0)

    @classmethod
    def of(cls, tokenizer) -> _Qwen2Plan | None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None or not getattr(tokenizer, "is_fast", False):
            return None
        try:
            normalizer = backend.normalizer
            if normalizer is not None and json.loads(normalizer.__getstate__()) != {"type": "NFC"}:
                return None
            pre = json.loads(backend.pre_tokenizer.__getstate__())
            if pre.get("type") != "Sequence" or len(pre.get("pretokenizers", ())) != 2:
                return None
            split, byte_level = pre["pretokenizers"]
            byte_level.pop("trim_offsets", None)  # offsets only
            if split != _QWEN2_SPLIT or byte_level != _BYTE_LEVEL:
                return None
            if type(backend.model).__name__ != "BPE" or backend.model.dropout:
                return None
            added = list(backend.get_added_tokens_decoder().values())
            if any(t.normalized or t.lstrip or t.rstrip or t.single_word for t in added):
                return None
            # The post-processor must add nothing (qwen-tts's slicing [3:-5] assumes so too).
            probe = "a"
            if tokenizer(probe)["input_ids"] != tokenizer(probe, add_special_tokens=False)["input_ids"]:
                return None
        except (AttributeError, TypeError, ValueError, KeyError):
            return None
        return cls(backend, [t.content for t in added])

    def cut(self, text: str, start: int) -> int | None:
        """The largest position c >= start, c > 0, such that the tokens of text[:c] are final whatever
        text follows, and tokenising from c on its own is exact; None when there is none."""
        end = len(text)  # text before `end` is not the start of an unfinished added token
        for p in range(max(0, len(text) - self._longest_added + 1), len(text)):
            if text[p:] in self._added_prefixes:
                end = p
                break
        cuts: list[int] = []
        a = 0
        for match in self._added.finditer(text) if self._added is not None else ():
            s, e = match.span()
            if s >= end:
                break
            self._closed_cuts(text, a, s, cuts)
            cuts.append(s)
            if e > end:
                a = None
                break
            cuts.append(e)
            a = e
        if a is not None and a < len(text):
            self._open_cuts(text, a, end, cuts)
        return max((c for c in cuts if c >= start and c > 0), default=None)

    def _chunk_spans(self, normalized: str) -> list[tuple[int, int]]:
        return [span for _, span in self._pre_tokenize(normalized)]

    def _closed_cuts(self, text: str, a: int, b: int, cuts: list[int]) -> None:
        """Cuts inside text[a:b], a part that ends at a final added token: all its chunks are final."""
        if b <= a:
            return
        normalized = _Normalized(text, a, b, self._normalize)
        for _, e in self._chunk_spans(normalized.text):
            x = normalized.original(e)
            if x is not None and x < b:
                cuts.append(x)

    def _open_cuts(self, text: str, a: int, end: int, cuts: list[int]) -> None:
        """Cuts inside the last part, text[a:], whose text goes on (or, from `end`, may become an added
        token): only chunks decided by its final normalised characters count."""
        normalized = _Normalized(text, a, len(text), self._normalize)
        chars = normalized.text
        # The final normalised characters: up to the last split point at or before `end`, plus the class
        # (letter, digit, space, ...) of the next one when that comes from an ASCII character: it is a
        # starter there, and what it may compose with later keeps its class (test_incremental_text).
        final, f = 0, a
        for x in range(end, a, -1):
            if _splits(text, x):
                final, f = normalized.position(x), x
                break
        class_final = final + 1 if f < end and text[f].isascii() else final
        for s, e in self._chunk_spans(chars):
            # The match at s reads its own characters, the class of the one after it and of those up to
            # the end of a whitespace run at s, and after an apostrophe two characters exactly.
            if max(e, _space_run_end(chars, s)) >= class_final or (chars[s] == "'" and s + 2 >= final):
                break
            x = normalized.original(e)
            if x is not None:
                cuts.append(x)


def _space_run_end(chars: str, s: int) -> int:
    i = s
    while i < len(chars) and _is_space(chars[i]):
        i += 1
    return i


class IncrementalTokenizer:
    """Text token ids of a text fed in pieces, committed as soon as no later text can change them.

    tokenizer: a transformers tokenizer, e.g. the qwen-tts processor's `processor.tokenizer`. Commits are
    early for a fast tokenizer with Qwen2's pipeline (the module docstring says when); with any other
    tokenizer feed() returns [] and finish() all the tokens. Not thread-safe: one feeder.
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._plan = _Qwen2Plan.of(tokenizer)
        self._text = ""
        self._window = PREFIX  # the uncommitted text, with the role prefix until the first commit
        self._at_start = True
        self._committed: list[int] = []
        self._finished = False

    @property
    def text(self) -> str:
        """All text fed so far."""
        return self._text

    @property
    def committed(self) -> list[int]:
        """The ids committed so far (by feed(), and by finish() once called)."""
        return list(self._committed)

    @property
    def pending_text(self) -> str:
        """The text fed but not yet committed: what the next feed() tokenises again."""
        return self._window[len(PREFIX) :] if self._at_start else self._window

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, piece: str) -> list[int]:
        """Append `piece` to the text; return the ids it committed (possibly [])."""
        if self._finished:
            raise ValueError("IncrementalTokenizer.feed() after finish()")
        if not isinstance(piece, str):
            raise TypeError(f"text pieces must be str, got {type(piece).__name__}")
        if not piece:
            return []
        self._text += piece
        self._window += piece
        if self._plan is None:
            return []
        start = len(PREFIX) if self._at_start else 0
        cut = self._plan.cut(self._window, start)
        if cut is None:
            return []
        encoding = self._tokenizer(self._window, return_offsets_mapping=True)
        ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
        count = next((i for i, (_, e) in enumerate(offsets) if e > cut), len(ids))
        if any(s < cut for s, _ in offsets[count:]):
            return []  # offsets that do not split at the cut: commit nothing now (finish() stays exact)
        skip = ROLE_TOKENS if self._at_start else 0
        if count < skip:
            return []
        new = ids[skip:count]
        self._window = self._window[cut:]
        self._at_start = False
        self._committed.extend(new)
        return new

    def finish(self) -> list[int]:
        """The text has ended: return the remaining ids."""
        if self._finished:
            raise ValueError("IncrementalTokenizer.finish() called twice")
        self._finished = True
        ids = self._tokenizer(self._window + SUFFIX)["input_ids"]
        rest = ids[ROLE_TOKENS:-END_TOKENS] if self._at_start else ids[:-END_TOKENS]
        self._committed.extend(rest)
        return list(rest)
