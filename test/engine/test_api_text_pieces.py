"""Text given in pieces (an LLM's token stream): spoken as it arrives, and exactly as the whole text.

The acceptance property (issue 13): for any split of a text into pieces, greedy decoding gives the same
frames as the whole text in the streaming-text layout (non_streaming_mode=False), so the same audio. The
engines run the tiny checkpoints in float64, so the audio is compared with waveform_bounds.py's rule 1
(the same codes decoded twice: per sample <= EXACT_BOUND) and the frame counts exactly.
"""

import random
import threading

import numpy as np
import pytest
from stream_reader import StreamReader
from waveform_bounds import assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.text_feed import TextFeed
from qwen3_tts_ros.engine.types import RunawayGuard
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

FRAMES = 24
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=FRAMES + 1)
TEXT = "Hello world, it's 42 degrees.  Streaming: fine!"
SPLITS_PER_KIND = 6

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def engines(tiny_custom_voice_tts_f64, tiny_base_tts_f64, tiny_voice_design_tts_f64):
    # Room for the texts here in one piece: under half the token budget a stream is never cut
    # (streamed_text.py), and the whole text is not split either.
    return {
        "custom_voice": Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=1024),
        "base": Qwen3TTSCudaGraphs(tiny_base_tts_f64, max_seq_len=1024),
        "voice_design": Qwen3TTSCudaGraphs(tiny_voice_design_tts_f64, max_seq_len=1024),
    }


@pytest.fixture(scope="module")
def voices(engines, reference_audio):
    base = engines["base"]
    prompt = base.create_voice_prompt
    return {
        "custom_voice": ("custom_voice", dict(speaker="vivian", language="english")),
        "voice_design": ("voice_design", dict(instruct="A calm voice.", language="english")),
        # 1 s of reference: 13 codec frames. A long reference text covers them (the prompt needs one
        # token of the text); a short one leaves 10 text positions the prompt waits for.
        "icl": ("base", dict(voice_clone_prompt=prompt(reference_audio, "Reference words."))),
        "icl_short_ref": ("base", dict(voice_clone_prompt=prompt(reference_audio, "Hi."))),
        "x_vector": ("base", dict(voice_clone_prompt=prompt(reference_audio, None, True))),
    }


def stream(engine, kind_voice, text, **options):
    kind, voice = kind_voice
    method = {"custom_voice": engine.stream_custom_voice, "voice_design": engine.stream_voice_design,
              "base": engine.stream_voice_clone}[kind]  # fmt: skip
    options = {"pcm_format": "float32", **GREEDY, **options}
    if kind == "base":
        return method(text, **voice, **options)
    if kind == "voice_design":
        return method(text, voice["instruct"], voice["language"], **options)
    return method(text, voice["speaker"], voice["language"], **options)


def audio_of(audio_stream) -> np.ndarray:
    chunks = list(audio_stream)
    assert chunks[-1].is_final and not any(c.is_final for c in chunks[:-1])
    return np.concatenate([c.pcm for c in chunks])


def random_split(text: str, rnd: random.Random) -> list[str]:
    """Cuts anywhere (inside words, whitespace runs, multi-byte characters' strings), empty pieces too."""
    style = rnd.choice(["chars", "random", "random_with_empty"])
    if style == "chars":
        return list(text)
    cuts = sorted(rnd.sample(range(1, len(text)), rnd.randint(1, len(text) - 1)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    if style == "random_with_empty":
        for _ in range(3):
            pieces.insert(rnd.randrange(len(pieces) + 1), "")
    return pieces


def fed_by_thread(pieces: list[str]) -> TextFeed:
    """A TextFeed another thread fills as fast as it can: the generation meets the text wherever the
    thread scheduling puts it (the exactness must not depend on where)."""
    feed = TextFeed()

    def produce():
        for piece in pieces:
            feed.put(piece)
        feed.close()

    threading.Thread(target=produce, daemon=True).start()
    return feed


@pytest.mark.parametrize("voice", ["custom_voice", "voice_design", "icl", "icl_short_ref", "x_vector"])
def test_any_split_gives_the_audio_of_the_whole_text(engines, voices, voice):
    kind_voice = voices[voice]
    engine = engines[kind_voice[0]]
    for text in (TEXT, "Ünïcödé 你好，世界！ ok"):
        whole_stream = stream(engine, kind_voice, text, non_streaming_mode=False)
        whole = audio_of(whole_stream)
        assert whole_stream.stats.frames > 0
        rnd = random.Random(f"{voice}-{text}")
        for trial in range(SPLITS_PER_KIND):
            pieces = random_split(text, rnd)
            source = fed_by_thread(pieces) if trial % 2 else iter(pieces)
            pieced = stream(engine, kind_voice, source)
            got = audio_of(pieced)
            what = f"{voice} split {trial}: {pieces!r}"
            assert pieced.stats.frames == whole_stream.stats.frames, what
            assert pieced.stats.stopped_by == whole_stream.stats.stopped_by, what
            assert pieced.stats.text_length == len(text), what
            assert_same_audio(got, whole, what)


def test_cancel_before_any_text(engines, voices):
    engine = engines["custom_voice"]
    cancel = threading.Event()
    cancel.set()
    audio_stream = stream(engine, voices["custom_voice"], TextFeed(), cancel=cancel)
    chunks = list(audio_stream)
    assert [c.frame_count for c in chunks] == [0] and chunks[0].is_final
    assert audio_stream.stats.stopped_by == "cancelled"


def test_text_source_error_is_raised_after_its_audio(engines, voices):
    engine = engines["custom_voice"]

    def llm():
        yield "Hello there, "
        yield "my friend."
        raise ConnectionError("the LLM went away")

    chunks = []
    with pytest.raises(ConnectionError, match="went away"):
        for chunk in stream(engine, voices["custom_voice"], llm()):
            chunks.append(chunk)
    assert sum(c.frame_count for c in chunks) > 0
    assert audio_of(stream(engine, voices["custom_voice"], ["Next."])).size > 0  # the engine is free


def test_pieces_need_the_streaming_text_layout(engines, voices):
    with pytest.raises(ValueError, match="non_streaming_mode=True needs the whole text"):
        stream(engines["custom_voice"], voices["custom_voice"], ["a", "b"], non_streaming_mode=True)
    with pytest.raises(TypeError, match="text must be a str or an iterable of str pieces"):
        stream(engines["custom_voice"], voices["custom_voice"], 42)
    feed = TextFeed()
    with pytest.raises(TypeError, match="text pieces must be str"):
        feed.put(b"bytes")
    feed.close()
    with pytest.raises(ValueError, match="closed"):
        feed.put("late")


def test_generate_takes_pieces_too(engines, voices):
    engine = engines["custom_voice"]
    voice = voices["custom_voice"][1]
    whole = audio_of(stream(engine, voices["custom_voice"], TEXT, non_streaming_mode=False))
    wavs, sr = engine.generate_custom_voice(iter(TEXT.split(" ")), voice["speaker"], "english", **GREEDY)
    # split(" ") drops the spaces: put them back for the same text
    assert sr == 24000 and len(wavs) == 1
    spaced = [w + " " for w in TEXT.split(" ")]
    spaced[-1] = spaced[-1][:-1]
    wavs, _ = engine.generate_custom_voice(iter(spaced), voice["speaker"], "english", **GREEDY)
    assert_same_audio(wavs[0], whole, "generate_custom_voice with pieces")


def test_runaway_guard_ends_an_utterance_whose_eos_never_wins(tiny_custom_voice_tts_f64, voices):
    """A frame budget from the text's tokens ends it: whole text and pieces alike, after exactly the
    budget's frames, which are the unguarded run's first frames."""
    text = "Run away."  # 9 byte tokens
    long_run = dict(GREEDY, max_new_tokens=120)
    free = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=256)
    unguarded_stream = stream(free, voices["custom_voice"], text, non_streaming_mode=False, **long_run)
    unguarded = audio_of(unguarded_stream)
    # This checkpoint's EOS never wins for this text within max_new_tokens: the runaway case.
    assert unguarded_stream.stats.stopped_by == "max_new_tokens"
    guard = RunawayGuard(frames_per_token=2.0, min_frames=5)
    budget = guard.max_frames(len(text.encode()))
    assert budget == 18
    guarded = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=256, runaway=guard)
    for source in (text, list(text)):
        s = stream(guarded, voices["custom_voice"], source, non_streaming_mode=False, **long_run)
        got = audio_of(s)
        assert s.stats.stopped_by == "runaway" and s.stats.frames == budget
        assert_same_audio(got, unguarded[: len(got)], f"runaway guard, {type(source).__name__}")
    assert RunawayGuard(8.0, 50).max_frames(3) == 50  # the floor for short texts
    with pytest.raises(ValueError, match="runaway frames_per_token"):
        RunawayGuard(0.0, 50)
    with pytest.raises(ValueError, match="runaway min_frames"):
        RunawayGuard(8.0, 0)


def test_speaks_before_the_text_ends(engines, voices):
    """The first audio comes while the rest of the text is still unwritten, and the whole is still exact."""
    engine = engines["custom_voice"]
    first, rest = "Hello world, this is the first part", " and this is the rest."
    whole = audio_of(stream(engine, voices["custom_voice"], first + rest, non_streaming_mode=False))
    feed = TextFeed()
    feed.put(first)
    audio_stream = stream(engine, voices["custom_voice"], feed, chunk_frames=2)
    reader = StreamReader(audio_stream)
    assert reader.first_audio.wait(EVENT_TIMEOUT_S), "no audio while the text was still being written"
    assert not feed.closed
    feed.put(rest)
    feed.close()
    assert reader.done.wait(EVENT_TIMEOUT_S), "the stream did not end after its text did"
    assert_same_audio(np.concatenate([c.pcm for c in reader.chunks]), whole, "first part, then the rest")
    stats = audio_stream.stats
    assert stats.first_text_s > 0 and stats.time_to_first_audio_ms > 1000 * stats.first_text_s
    assert stats.text_tokens == len((first + rest).encode())  # the byte-level tokenizer: one per byte


def test_cancel_while_waiting_for_text(engines, voices):
    engine = engines["custom_voice"]
    feed = TextFeed()
    feed.put("Words that start the text, then")
    cancel = threading.Event()
    audio_stream = stream(engine, voices["custom_voice"], feed, cancel=cancel, max_new_tokens=400)
    reader = StreamReader(audio_stream)
    assert reader.first_audio.wait(EVENT_TIMEOUT_S)
    cancel.set()  # the text never ends: only the cancel can end this stream
    assert reader.done.wait(EVENT_TIMEOUT_S), "cancel did not end a stream that waits for text"
    assert reader.chunks[-1].is_final and reader.chunks[-1].frame_count == 0
    assert audio_stream.stats.stopped_by == "cancelled"
    # The engine is free for the next stream.
    assert audio_of(stream(engine, voices["custom_voice"], ["Next."])).size > 0


def test_long_stream_continues_in_new_pieces_at_sentence_ends(tiny_custom_voice_tts_f64, voices):
    """A stream longer than one utterance fits: past half the token budget it ends at the next sentence
    end and goes on in a new piece (a new prompt), exactly as those sentences streamed one by one."""
    engine = Qwen3TTSCudaGraphs(tiny_custom_voice_tts_f64, max_seq_len=160)
    kind_voice = voices["custom_voice"]
    request = engine.custom_voice_requests("x", "vivian", "english", non_streaming_mode=False)[0]
    budget = engine.text_token_budget(request)
    half = budget // 2
    # Sentences of byte-level tokens: the first piece passes half the budget inside its second sentence.
    first = "a" * (half - 4) + "."
    second = "b" * 6 + "."
    third = "c" * 5 + "!"
    text = f"{first} {second} {third}"
    assert len(first) + 1 + len(second) <= budget
    options = dict(max_new_tokens=30)
    expected = np.concatenate(
        [audio_of(stream(engine, kind_voice, part, non_streaming_mode=False, **options))
         for part in (f"{first} {second}", third)]
    )  # fmt: skip
    s = stream(engine, kind_voice, fed_by_thread(list(text)), **options)
    assert_same_audio(audio_of(s), expected, "a long stream in two pieces")
    assert s.stats.text_length == len(text)
