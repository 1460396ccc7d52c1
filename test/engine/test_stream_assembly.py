"""Stream assembly (node/stream_assembly.py, ROS-free): TextChunk fields in, one text per stream out, in
order, never past a gap, with every drop counted. The node's tests (test/ros/test_text_stream.py) run the same
rules through real DDS and a real worker."""

import random

import pytest

from qwen3_tts_ros.node.stream_assembly import (
    BAD_ID,
    GAP,
    MAX_STREAM_ID_CHARS,
    OPEN_STREAMS,
    TIMEOUT,
    TOO_MUCH_TEXT,
    StreamLimits,
    TextStreams,
)
from qwen3_tts_ros.node.text import clean_text

LIMITS = StreamLimits(timeout_s=2.0, max_open_streams=2, max_buffered_chars=100)


class Utterance:
    """What a stream's text is handed to (the node's is an engine TextFeed behind a queued text): records the
    pieces; `taken` chars count as read by the engine."""

    def __init__(self, stream_id: str, received_at: float):
        self.stream_id, self.received_at = stream_id, received_at
        self.pieces: list[str] = []
        self.closes = 0
        self.taken = 0
        self.is_cancelled = False

    def put(self, text: str) -> None:
        assert self.closes == 0, "put after close"
        self.pieces.append(text)

    def close(self) -> None:
        self.closes += 1

    def unread_chars(self) -> int:
        return sum(map(len, self.pieces)) - self.taken

    def cancelled(self) -> bool:
        return self.is_cancelled

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class Harness:
    def __init__(self, limits: StreamLimits = LIMITS, accept: bool = True):
        self.limits, self.accept = limits, accept
        self.utterances: list[Utterance] = []
        self.warnings: list[tuple[str, str]] = []
        self.streams = TextStreams(self._open, lambda kind, message: self.warnings.append((kind, message)))

    def _open(self, stream_id: str, received_at: float):
        if not self.accept:
            return None
        self.utterances.append(Utterance(stream_id, received_at))
        return self.utterances[-1]

    def send(self, stream_id: str, sequence: int, text: str, final: bool = False, now: float = 0.0) -> None:
        self.streams.receive(stream_id, sequence, text, final, now, self.limits)

    def counters(self) -> dict:
        return self.streams.counters()

    def only(self) -> Utterance:
        (utterance,) = self.utterances
        return utterance


def test_chunks_in_order_are_one_utterance_closed_by_the_final_chunk():
    h = Harness()
    for i, piece in enumerate(["Hello", " wor", "ld, how", " are you?"]):
        h.send("a", i, piece, now=float(i))
    assert h.only().text == "Hello world, how are you?" and h.only().closes == 0
    h.send("a", 4, "", final=True, now=5.0)
    u = h.only()
    assert (u.stream_id, u.received_at, u.closes) == ("a", 0.0, 1)
    c = h.counters()
    assert (c["chunks"], c["started"], c["completed"], h.streams.open_streams()) == (5, 1, 1, 0)
    assert all(c[k] == 0 for k in ("gaps", "duplicates", "dropped", "timeouts", "empty", "stopped"))


def test_out_of_order_chunks_are_handed_on_in_sequence_order():
    h = Harness()
    h.send("a", 2, " three", now=0.0)
    h.send("a", 1, " two", now=0.1)
    assert h.utterances == [], "nothing before chunk 0"
    h.send("a", 0, "One", now=0.2)
    assert h.only().text == "One two three"
    h.send("a", 4, ".", final=True, now=0.3)
    assert h.only().closes == 0, "chunk 3 is still missing"
    h.send("a", 3, " four", now=0.4)
    assert (h.only().text, h.only().closes) == ("One two three four.", 1)
    assert h.counters()["gaps"] == 0 and h.counters()["completed"] == 1
    h.streams.expire(100.0, LIMITS)
    assert h.counters()["timeouts"] == 0


def test_a_gap_ends_the_stream_there_after_timeout_and_the_text_after_it_is_never_spoken():
    h = Harness()
    h.send("a", 0, "Before the gap", now=0.0)
    h.send("a", 2, " after", now=1.0)  # 1 is missing from here on
    for i, t in enumerate((1.5, 2.0, 2.5, 2.9)):  # chunks keep coming; the gap ends 2 s after it appeared
        h.send("a", 3 + i, " more", now=t)
    h.streams.expire(2.99, LIMITS)
    assert h.only().closes == 0
    h.streams.expire(3.0, LIMITS)
    u = h.only()
    assert (u.text, u.closes) == ("Before the gap", 1)
    c = h.counters()
    assert (c["gaps"], c["dropped"], c["timeouts"], c["completed"]) == (1, 5, 0, 0)
    assert [kind for kind, _ in h.warnings] == [GAP] and "chunk 1 missing" in h.warnings[0][1]
    h.send("a", 1, " late", now=3.1)  # the missing chunk, too late
    h.send("a", 9, " later", final=True, now=3.2)
    assert u.text == "Before the gap" and len(h.utterances) == 1
    assert h.counters()["dropped"] == 7


def test_a_gap_filled_in_time_waits_again_from_then_for_the_next_one():
    h = Harness()
    h.send("a", 0, "A", now=0.0)
    h.send("a", 2, " C", now=0.0)
    h.send("a", 4, " E", now=0.0)
    h.send("a", 1, " B", now=1.9)  # fills the first gap; 3 is now missing, waited for from 1.9
    h.streams.expire(3.8, LIMITS)
    assert h.only().closes == 0 and h.only().text == "A B C"
    h.streams.expire(3.9, LIMITS)
    assert h.only().closes == 1 and h.counters()["gaps"] == 1 and h.counters()["dropped"] == 1


def test_duplicates_are_dropped_and_counted_also_after_the_stream_ended():
    h = Harness()
    h.send("a", 0, "One")
    h.send("a", 0, "One")
    h.send("a", 2, " three")
    h.send("a", 2, " three")
    h.send("a", 1, " two", final=False)
    h.send("a", 3, ".", final=True)
    h.send("a", 1, " two")
    assert h.only().text == "One two three." and h.only().closes == 1
    c = h.counters()
    assert (c["duplicates"], c["dropped"], c["completed"]) == (3, 0, 1)


def test_a_silent_stream_ends_as_if_final_after_timeout():
    h = Harness()
    h.send("a", 0, "The LLM", now=0.0)
    h.send("a", 1, " stopped writing", now=1.0)
    h.streams.expire(2.9, LIMITS)
    assert h.only().closes == 0
    h.streams.expire(3.0, LIMITS)
    assert (h.only().text, h.only().closes) == ("The LLM stopped writing", 1)
    c = h.counters()
    assert (c["timeouts"], c["completed"], c["gaps"]) == (1, 0, 0)
    assert [kind for kind, _ in h.warnings] == [TIMEOUT]


def test_open_streams_bound_rejects_a_whole_stream_and_counts_each_chunk():
    h = Harness()
    h.send("a", 0, "First")
    h.send("b", 0, "Second")
    h.send("c", 0, "Third")  # a third open stream: rejected
    h.send("c", 1, " more", final=True)
    assert [u.stream_id for u in h.utterances] == ["a", "b"]
    assert h.counters()["rejected_open_streams"] == 2 and [k for k, _ in h.warnings] == [OPEN_STREAMS]
    h.send("a", 1, ".", final=True)
    h.send("d", 0, "Fourth", final=True)  # room again
    assert [u.stream_id for u in h.utterances] == ["a", "b", "d"]


def test_buffered_text_bound_ends_the_stream_before_the_chunk_that_exceeds_it():
    h = Harness()
    h.send("a", 0, "x" * 60)
    h.only().taken = 50  # the utterance took 50 characters: 10 unread
    h.send("a", 1, "y" * 90)  # 10 + 90 = 100: at the bound, accepted
    h.send("a", 3, "z" * 5)  # held out of order: 105 > 100, rejected
    u = h.only()
    assert (u.text, u.closes) == ("x" * 60 + "y" * 90, 1)
    c = h.counters()
    assert (c["rejected_buffered_chars"], c["dropped"]) == (1, 0)
    assert [k for k, _ in h.warnings] == [TOO_MUCH_TEXT]
    h.send("a", 2, "w")
    assert h.counters()["dropped"] == 1 and u.text.endswith("y")


def test_white_space_and_control_characters_as_tts_text_would_speak_them():
    h = Harness()
    for i, piece in enumerate(["  \n", " Hi", "\x00,\tthere", "  ", "", " you", "\x07 \n"]):
        h.send("a", i, piece)
    assert h.only().pieces[0] == "Hi", "the utterance starts with the first piece that has something to say"
    h.send("a", 7, " ", final=True)
    assert h.only().text == clean_text("   \n Hi\x00,\tthere   you\x07 \n ") == "Hi, there   you"


@pytest.mark.parametrize("seed", range(20))
def test_any_split_gives_the_text_that_tts_text_speaks(seed):
    rng = random.Random(seed)
    whole = " \t Ünïcode, émoji 👍🏽 and\x1b[0m control\r\ncharacters  in a reply.\n  "
    cuts = sorted(rng.sample(range(1, len(whole)), rng.randint(1, 20)))
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)])] + [""] * rng.randint(0, 2)
    rng.shuffle(order := list(range(len(pieces))))
    h = Harness(StreamLimits(2.0, 2, 10_000))
    for i in order:
        h.send("s", i, pieces[i], final=i == len(pieces) - 1)
    assert h.only().text == clean_text(whole) and h.only().closes == 1


def test_a_stream_with_nothing_to_say_is_never_queued_and_counted_empty():
    h = Harness()
    h.send("a", 0, "  ")
    h.send("a", 1, "\n", final=True)
    h.send("b", 0, " ")
    h.streams.expire(10.0, LIMITS)
    assert h.utterances == []
    c = h.counters()
    assert (c["empty"], c["completed"], c["timeouts"], h.streams.open_streams()) == (2, 1, 1, 0)


def test_stop_ends_every_open_stream_and_drops_the_rest_of_its_text():
    h = Harness()
    h.send("a", 0, "Speaking")
    h.send("a", 2, " held")
    h.send("b", 0, " ")  # open, nothing to say yet
    assert h.streams.stop_all("stopped") == 2
    assert h.only().closes == 1 and h.streams.open_streams() == 0
    h.send("a", 1, " missing one")
    h.send("a", 3, " later", final=True)
    h.send("b", 1, "Now text")
    assert h.only().text == "Speaking" and len(h.utterances) == 1
    c = h.counters()
    assert (c["stopped"], c["dropped"], c["empty"]) == (2, 4, 0)


def test_a_stopped_utterance_ends_its_stream_at_the_next_chunk_or_check():
    h = Harness()
    h.send("a", 0, "Preempted")
    h.send("b", 0, "Also preempted")
    for u in h.utterances:
        u.is_cancelled = True
    h.send("a", 1, " rest")
    h.streams.expire(0.0, LIMITS)  # before any timeout: ends the cancelled one
    assert [(u.text, u.closes) for u in h.utterances] == [("Preempted", 1), ("Also preempted", 1)]
    c = h.counters()
    assert (c["stopped"], c["dropped"]) == (2, 1)
    h.streams.stopped("a", "preempted")  # the worker's word comes later: already ended, nothing more
    assert h.counters()["stopped"] == 2


def test_a_stream_that_cannot_be_queued_ends_and_is_counted():
    h = Harness(accept=False)
    h.send("a", 0, "Not active")
    h.send("a", 1, " rest", final=True)
    h.streams.refuse("b", 0)  # refused before assembly (node not active)
    h.send("b", 1, " later")
    c = h.counters()
    assert (c["rejected_inactive"], c["dropped"], c["chunks"], h.streams.open_streams()) == (2, 2, 4, 0)


def test_an_empty_or_huge_stream_id_is_rejected_and_counted():
    h = Harness()
    h.send("", 0, "No id.", final=True)
    h.send("x" * (MAX_STREAM_ID_CHARS + 1), 0, "Too long an id.", final=True)
    h.send("x" * MAX_STREAM_ID_CHARS, 0, "Longest id.", final=True)
    assert [u.text for u in h.utterances] == ["Longest id."]
    assert h.counters()["rejected_stream_id"] == 2 and [k for k, _ in h.warnings] == [BAD_ID, BAD_ID]
