"""tts/text_stream through a real node process over real DDS: a stream of TextChunk messages is spoken as one
utterance while it is still being written; out-of-order chunks, gaps, duplicates, silence, bounds, the queue
policy, stop and deactivate mid-stream (node/stream_assembly.py has the rules,
test/engine/test_stream_assembly.py their unit tests).

Streams that must still be speaking when the test acts ("live" streams) send a text that this greedy tiny
checkpoint does not end (EOS) within its frames (the `live_text` fixture checks that), and no final chunk: the
engine cannot launch the frame after the text's last token until the text ends, so the utterance waits for
text until the test ends it, whatever the machine's speed.
"""
import itertools
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

FRAMES = 40  # sampling.max_new_tokens: more than a live text's tokens, so a live stream waits for text
CHECK_FRAMES = 64  # a live text's frames without EOS (its byte tokens are fewer)
_ids = itertools.count()


def stream_id(what: str) -> str:
    return f"{what}-{next(_ids)}"


def greedy_request(engine, text, max_new_tokens):
    from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest

    return SpeechRequest(text=text, mode="custom_voice", language="Auto",
                         speaker=engine.get_supported_speakers()[0], non_streaming_mode=False,
                         sampling=SamplingParams(do_sample=False, subtalker_dosample=False,
                                                 max_new_tokens=max_new_tokens))


@pytest.fixture(scope="module")
def live_text(engine):
    """A text that the greedy tiny model speaks without EOS when it comes as a stream's first chunk: its
    frames up to the wait for more text, and after it (the text ended) up to CHECK_FRAMES. Checked the way
    the node runs it: a TextFeed holding the text, closed once the generation waits for more."""
    from qwen3_tts_ros.engine.text_feed import TextFeed

    for text in ("Hold on, I am still thinking.", "Let me check the map first.", "One moment please."):
        assert len(text.encode()) < FRAMES <= CHECK_FRAMES  # byte tokens: the wait for text comes first
        feed = TextFeed()
        feed.put(text)
        stream = engine.stream(greedy_request(engine, feed, CHECK_FRAMES), first_chunk_frames=CHECK_FRAMES,
                               chunk_frames=CHECK_FRAMES)
        chunks = iter(stream)
        first = next(chunks)  # handed out when the next frame needs text (or at the end)
        feed.close()
        for _ in chunks:
            pass
        if not first.is_final and stream.stats.stopped_by == "max_new_tokens":
            return text
    pytest.skip("no candidate text runs long enough on this tiny checkpoint")


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, engine, node_session, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"voice.speaker": engine.get_supported_speakers()[0],
                        "sampling.max_new_tokens": FRAMES, "text_stream.timeout_s": 300.0})
    with node_session(tmp_path_factory.mktemp("text_stream_node"), overrides) as running:
        yield running


@pytest.fixture
def defaults(node):
    """Each test starts from the module's settings and leaves them so."""
    yield
    node.set_params(text_stream__timeout_s=300.0, text_stream__max_open_streams=4,
                    text_stream__max_buffered_chars=10000, queue__policy="queue",
                    streaming__first_chunk_frames=1, streaming__chunk_frames=4)


def counter(node, name: str) -> int:
    return int(node.status()[name])


def wait_counter(node, name: str, value: int) -> None:
    """Until /diagnostics reports `name` == value (each status() waits for a new one)."""
    seen = None
    for _ in range(int(TIMEOUT / 0.2)):
        seen = counter(node, name)
        if seen >= value:
            break
    assert seen == value, f"{name}: {seen}, waited for {value}\n{node.log()}"


def first_chunk_of_new_utterance(client, mark) -> object:
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), "no audio"
    return client.chunks[mark["chunks"]].msg


def start_live(node, live_text, what: str = "live") -> tuple[str, dict, object]:
    """A stream that speaks and waits for text: (its id, the mark before it, its first audio chunk)."""
    client = node.client
    mark = client.mark()
    sid = stream_id(what)
    client.send_chunk(sid, 0, live_text)
    first = first_chunk_of_new_utterance(client, mark)
    assert not first.is_final
    return sid, mark, first


def pcm_of(msgs) -> np.ndarray:
    return np.frombuffer(b"".join(bytes(m.audio.data) for m in msgs), dtype="<i2")


def test_a_stream_waits_for_text_speaking_and_ends_when_it_goes_silent(node, live_text, defaults):
    """One utterance from the first words on; speaking stays true while it waits for text; silence ends it as
    if final, and its latency says how it waited."""
    client = node.client
    timeouts = counter(node, "stream_timeouts")
    # 64-frame chunks: a chunk of fewer frames, not final, is the engine handing out what it has because the
    # next frame needs text that has not come.
    node.set_params(streaming__first_chunk_frames=64, streaming__chunk_frames=64)
    sid, mark, first = start_live(node, live_text)
    assert 0 < first.frame_count < 64
    speaking = [r.msg.data for r in client.speaking[mark["speaking"]:]]
    assert speaking == [True], "speaking while the stream waits for text"
    node.set_params(text_stream__timeout_s=1.0)  # the stream has been silent for longer: it ends now
    assert client.wait_done(mark, TIMEOUT), node.log()
    wait_counter(node, "stream_timeouts", timeouts + 1)
    groups = client.utterances(mark["chunks"])
    assert len(groups) == 1 and client.stream_problems(mark["chunks"]) == []
    assert [r.msg.data for r in client.speaking[mark["speaking"]:]] == [True, False]
    (lat,) = client.latencies(mark["latency"])
    assert lat.text_length == len(live_text) and not lat.interrupted and lat.stopped_by != "stopped"
    assert lat.text_stalls >= 1 and lat.text_wait_ms > 0
    assert 0 < lat.first_text_to_first_audio_ms <= lat.end_to_end_first_audio_ms
    assert lat.frames == sum(r.msg.frame_count for r in groups[lat.utterance_id])
    dropped, chunks = counter(node, "stream_dropped"), client.count("chunks")
    client.send_chunk(sid, 1, " Too late.", final=True)
    wait_counter(node, "stream_dropped", dropped + 1)
    assert client.count("chunks") == chunks, "a chunk of an ended stream is never spoken"


def queued_behind_a_live_stream(node, live_text, send) -> tuple[dict, list]:
    """Run `send()` (chunks of another stream) while a live stream speaks; end the live one once the other
    is assembled (completed +1), so that the other's utterance starts with all its text there (its audio is
    then the same whatever order its chunks came in) -> (mark, the other's chunks)."""
    client = node.client
    completed = counter(node, "stream_completed")
    live, mark, _ = start_live(node, live_text, "blocker")
    send()
    wait_counter(node, "stream_completed", completed + 1)
    client.send_chunk(live, 1, "", final=True)
    assert client.wait_done(mark, TIMEOUT), node.log()
    wait_counter(node, "stream_completed", completed + 2)
    groups = list(client.utterances(mark["chunks"]).values())
    assert len(groups) == 2 and client.stream_problems(mark["chunks"]) == []
    return mark, [r.msg for r in groups[1]]


def expected_pcm(engine, text) -> tuple[np.ndarray, int]:
    """The engine's audio of `text` arriving in pieces, all there when it starts (a closed TextFeed)."""
    from qwen3_tts_ros.engine.text_feed import TextFeed

    feed = TextFeed()
    feed.put(text)
    feed.close()
    stream = engine.stream(greedy_request(engine, feed, FRAMES), first_chunk_frames=1, chunk_frames=4,
                           pcm_format="int16")
    chunks = list(stream)
    return np.concatenate([c.pcm for c in chunks]).astype("<i2"), stream.stats.frames


PIECES = ["The robot", " arm is", " ready to", " pick up", " the red cup."]


@pytest.mark.parametrize("order", [[0, 1, 2, 3, 4], [3, 0, 2, 4, 1]], ids=["in_order", "out_of_order"])
def test_a_stream_is_one_utterance_in_sequence_order(node, engine, live_text, order, defaults):
    client, sid = node.client, stream_id("ordered")
    gaps = counter(node, "stream_gaps")

    def send():
        for i in order:
            client.send_chunk(sid, i, PIECES[i], final=i == len(PIECES) - 1)

    mark, msgs = queued_behind_a_live_stream(node, live_text, send)
    whole = "".join(PIECES)
    want, frames = expected_pcm(engine, whole)
    np.testing.assert_array_equal(pcm_of(msgs), want)
    assert sum(m.frame_count for m in msgs) == frames and [m.is_final for m in msgs].count(True) == 1
    lat = client.latencies(mark["latency"])[-1]
    assert lat.utterance_id == msgs[0].utterance_id and lat.text_length == len(whole)
    assert counter(node, "stream_gaps") == gaps


def test_duplicates_are_dropped_and_counted(node, engine, live_text, defaults):
    client, sid = node.client, stream_id("duplicated")
    duplicates = counter(node, "stream_duplicates")

    def send():
        for i in (0, 1, 1, 0, 2, 3, 2, 4):
            client.send_chunk(sid, i, PIECES[i], final=i == 4)

    _, msgs = queued_behind_a_live_stream(node, live_text, send)
    np.testing.assert_array_equal(pcm_of(msgs), expected_pcm(engine, "".join(PIECES))[0])
    wait_counter(node, "stream_duplicates", duplicates + 3)
    client.send_chunk(sid, 2, PIECES[2])  # after the stream ended: still a duplicate
    wait_counter(node, "stream_duplicates", duplicates + 4)


def test_bad_input_is_cleaned_as_on_tts_text(node, engine, live_text, defaults):
    """Control characters and white space at the stream's ends: what is spoken is clean_text of the whole."""
    from qwen3_tts_ros.node.text import clean_text

    client, sid = node.client, stream_id("dirty")
    pieces = [" \n\x00", "Control\x1b[0m char", "\tacters in a", "\r\nstream.\x07 ", "\n"]

    def send():
        for i, piece in enumerate(pieces):
            client.send_chunk(sid, i, piece, final=i == len(pieces) - 1)

    mark, msgs = queued_behind_a_live_stream(node, live_text, send)
    whole = clean_text("".join(pieces))
    assert whole == "Control[0m char acters in a  stream."
    np.testing.assert_array_equal(pcm_of(msgs), expected_pcm(engine, whole)[0])
    assert client.latencies(mark["latency"])[-1].text_length == len(whole)


def test_a_gap_ends_the_stream_there_and_what_follows_it_is_never_spoken(node, live_text, defaults):
    client, sid = node.client, stream_id("gap")
    gaps, dropped = counter(node, "stream_gaps"), counter(node, "stream_dropped")
    node.set_params(text_stream__timeout_s=1.0)
    mark = client.mark()
    client.send_chunk(sid, 0, live_text)  # its utterance waits for text: only the gap's end can end it
    client.send_chunk(sid, 2, " After the gap.", final=True)  # 1 never comes in time
    assert client.wait_done(mark, TIMEOUT), node.log()
    wait_counter(node, "stream_gaps", gaps + 1)
    assert counter(node, "stream_dropped") == dropped + 1
    (lat,) = client.latencies(mark["latency"])
    assert lat.text_length == len(live_text) and len(client.utterances(mark["chunks"])) == 1
    assert not lat.interrupted
    chunks = client.count("chunks")
    client.send_chunk(sid, 1, " The missing one.")
    wait_counter(node, "stream_dropped", dropped + 2)
    assert client.count("chunks") == chunks, "a chunk of an ended stream is never spoken"
    assert "chunk 1 missing" in node.log(20000)


@pytest.mark.parametrize("policy", ["queue", "interrupt"])
def test_a_text_while_a_stream_speaks_follows_the_queue_policy(node, live_text, policy, defaults):
    client = node.client
    stopped, dropped = counter(node, "stream_stopped"), counter(node, "stream_dropped")
    node.set_params(queue__policy=policy)
    sid, mark, _ = start_live(node, live_text)
    text = "A message on tts/text."
    client.say(text)
    if policy == "interrupt":
        wait_counter(node, "stream_stopped", stopped + 1)  # its utterance was preempted: the stream ends
    client.send_chunk(sid, 1, " And the rest.", final=True)
    assert client.wait_done(mark, TIMEOUT), node.log()
    latencies = client.latencies(mark["latency"])
    rest = 0 if policy == "interrupt" else len(" And the rest.")
    assert [m.text_length for m in latencies] == [len(live_text) + rest, len(text)]
    groups = list(client.utterances(mark["chunks"]).values())
    assert groups[0][-1].msg.is_final and groups[0][-1].at <= groups[1][0].at, "one after the other"
    if policy == "interrupt":
        assert latencies[0].interrupted and latencies[0].stopped_by == "stopped"
        wait_counter(node, "stream_dropped", dropped + 1)
    else:
        assert not latencies[0].interrupted
        assert counter(node, "stream_stopped") == stopped


def test_stop_mid_stream_ends_it_and_drops_the_rest(node, live_text, defaults):
    client = node.client
    stopped, dropped = counter(node, "stream_stopped"), counter(node, "stream_dropped")
    sid, mark, _ = start_live(node, live_text)
    response = client.stop()
    assert response.success and response.message.startswith("stopped the current utterance")
    assert response.message.endswith("ended 1 text stream(s)"), response.message
    assert client.wait_done(mark, TIMEOUT), node.log()
    (lat,) = client.latencies(mark["latency"])
    assert lat.interrupted and lat.stopped_by == "stopped" and client.stream_problems(mark["chunks"]) == []
    assert counter(node, "stream_stopped") == stopped + 1
    client.send_chunk(sid, 1, " The rest.")
    client.send_chunk(sid, 2, "", final=True)
    wait_counter(node, "stream_dropped", dropped + 2)
    assert len(client.utterances(mark["chunks"])) == 1


def test_deactivate_mid_stream_ends_it_and_refuses_chunks_until_active(node, live_text, defaults):
    client = node.client
    counts = {k: counter(node, k) for k in ("stream_stopped", "stream_dropped", "stream_rejected_inactive")}
    sid, mark, _ = start_live(node, live_text)
    assert client.change_state("deactivate")
    assert client.wait_done(mark, TIMEOUT), node.log()
    (lat,) = client.latencies(mark["latency"])
    assert lat.interrupted and client.stream_problems(mark["chunks"]) == []
    client.send_chunk(sid, 1, " While inactive.")
    client.send_chunk(stream_id("inactive"), 0, "A new stream while inactive.", final=True)
    wait_counter(node, "stream_rejected_inactive", counts["stream_rejected_inactive"] + 2)
    assert counter(node, "stream_stopped") == counts["stream_stopped"] + 1
    assert client.change_state("activate")
    client.send_chunk(sid, 2, " After activate.", final=True)
    wait_counter(node, "stream_dropped", counts["stream_dropped"] + 1)
    assert len(client.utterances(mark["chunks"])) == 1, "nothing spoken after the deactivate"


def test_bounds_reject_and_count(node, live_text, defaults):
    client = node.client
    node.set_params(text_stream__max_open_streams=1)
    rejected = counter(node, "stream_rejected_open_streams")
    sid, mark, _ = start_live(node, live_text)
    other = stream_id("one_too_many")
    client.send_chunk(other, 0, "A second stream.")
    client.send_chunk(other, 1, " Its rest.", final=True)
    wait_counter(node, "stream_rejected_open_streams", rejected + 2)
    node.set_params(text_stream__max_open_streams=4, text_stream__max_buffered_chars=20)
    too_much = counter(node, "stream_rejected_buffered_chars")
    queued = stream_id("buffered")
    client.send_chunk(queued, 0, "Queued stream, ")  # waits in the queue: 14 characters + 1 space held
    client.send_chunk(queued, 1, "too much text.")  # 15 + 14 > 20: rejected, the stream ends before it
    wait_counter(node, "stream_rejected_buffered_chars", too_much + 1)
    client.send_chunk(sid, 1, "", final=True)
    assert client.wait_done(mark, TIMEOUT), node.log()
    latencies = client.latencies(mark["latency"])
    assert [m.text_length for m in latencies] == [len(live_text), len("Queued stream,")]
    assert len(client.utterances(mark["chunks"])) == 2


def test_the_documented_example_speaks_one_utterance(node, defaults):
    """docs/NODE.md's "Speaking an LLM's output" publisher, run as it stands (on this node's namespace)."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "NODE.md").read_text()
    section = readme[readme.index("**Speaking an LLM's output**"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert '"/tts/text_stream"' in code
    code = code.replace('"/tts/text_stream"', repr(f"{node.namespace}/tts/text_stream"))
    client, mark = node.client, node.client.mark()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT)
    assert client.wait_done(mark, TIMEOUT), node.log()
    (lat,) = client.latencies(mark["latency"])
    assert lat.text_length == len("Hello there, I am your robot.")
    assert len(client.utterances(mark["chunks"])) == 1 and client.stream_problems(mark["chunks"]) == []


def test_runaway_guard_ends_an_utterance_the_model_does_not_end(node, live_text, defaults):
    """A frame budget from the text's tokens (here 0.01 frames per token, floor 5; load-time parameters, so
    the node is configured again): the live text, which this model does not end within CHECK_FRAMES frames,
    stops after 5, counted, with a warning."""
    client = node.client

    def reconfigure(**values):
        assert client.change_state("deactivate") and client.change_state("cleanup")
        node.set_params(**values)
        assert client.change_state("configure") and client.change_state("activate"), node.log()

    runaway = counter(node, "runaway")
    reconfigure(runaway__frames_per_token=0.01, runaway__min_frames=5)
    try:
        mark = client.mark()
        client.send_chunk(stream_id("runaway"), 0, live_text, final=True)
        assert client.wait_done(mark, TIMEOUT), node.log()
        (lat,) = client.latencies(mark["latency"])
        assert lat.stopped_by == "runaway" and lat.frames == 5 and not lat.interrupted
        assert client.stream_problems(mark["chunks"]) == []
        wait_counter(node, "runaway", runaway + 1)
        assert "cut by the runaway guard" in node.log(20000)
    finally:
        reconfigure(runaway__frames_per_token=8.0, runaway__min_frames=50)
