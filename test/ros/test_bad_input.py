"""Bad input to an ACTIVE node (real process, real DDS): each bad text or parameter is ignored, rejected or
spoken as plain text, with a log line and a counter; the node stays active, and an utterance queued before
the bad input still completes (sequence 0, 1, 2, ... and a final chunk).

Configure-time bad input (voice settings, reference audio files, model directories, max_seq_len) is in
test_configure_errors.py; the engine's own checks are in test/engine.
"""
import time

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

FRAMES = 8  # max_new_tokens of the quick utterances
# Distinct lengths: the latency messages identify each spoken text by text_length.
BEFORE = "The robot starts its morning inspection round now."
QUEUED = "Queued before the bad input, it must still be spoken."
AFTER = "Spoken after the bad input."


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, node_session, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"sampling.max_new_tokens": FRAMES, "diagnostics.period_s": 0.1})
    log_dir = tmp_path_factory.mktemp("bad_input_node")
    with node_session(log_dir, overrides, env={"OMP_NUM_THREADS": "1"}) as running:
        yield running


def counters(node) -> dict[str, int]:
    status = node.status()
    assert status["lifecycle_state"] == "active", status
    keys = ("texts_received", "empty", "rejected", "too_long", "dropped", "utterances", "errors")
    return {k: int(status[k]) for k in keys}


def wait_spoken(node, mark, lengths: list[int], timeout: float = TIMEOUT) -> list:
    """Wait until texts of these lengths were spoken (latency messages), in order; return the latencies."""
    client = node.client

    def spoken():
        return [m.text_length for m in client.latencies(mark["latency"])]

    def done():
        got, i = spoken(), 0
        for length in got:  # `lengths` must be a subsequence of what was spoken
            if i < len(lengths) and length == lengths[i]:
                i += 1
        return i == len(lengths) and client.count("speaking") and client.speaking[-1].msg.data is False

    assert client.wait_for(done, timeout), f"spoken {spoken()}, wanted {lengths}\n{node.log()}"
    assert client.stream_problems(mark["chunks"]) == []
    return client.latencies(mark["latency"])


def around_bad_input(node, bad):
    """BEFORE is speaking and QUEUED waits in the queue when `bad()` runs; then AFTER is sent. All three
    must be spoken completely, in order, without error."""
    client = node.client
    received = int(node.status()["texts_received"])
    mark = client.mark()
    client.say(BEFORE)
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), node.log()
    client.say(QUEUED)
    # QUEUED reached the node (queued behind BEFORE, or speaking) before the bad input is sent
    deadline = time.monotonic() + TIMEOUT
    while int(node.status()["texts_received"]) < received + 2:
        assert time.monotonic() < deadline, f"QUEUED did not reach the node within {TIMEOUT:.0f} s"
        time.sleep(0.05)
    bad()
    client.say(AFTER)
    latencies = wait_spoken(node, mark, [len(BEFORE), len(QUEUED), len(AFTER)])
    for lat in latencies:
        assert lat.error == "" and not lat.interrupted and lat.frames > 0, lat
    return mark, latencies


def test_bad_texts_are_ignored_rejected_or_spoken_and_queued_work_survives(node):
    client = node.client
    huge = ("The quick brown robot jumps over the lazy dog. " * 2200)[:100_000]
    spoken_as_text = {
        "punctuation only": "...!?;:--,,''\"\"()[]{}",
        "emoji only": "\U0001F600\U0001F916\U0001F44D\U0001F3FD\u2764\ufe0f\u200d\U0001F525",
        "mixed scripts": "Hello \u4f60\u597d \u041f\u0440\u0438\u0432\u0435\u0442 "
                         "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
                         "\u0928\u092e\u0938\u094d\u0924\u0947 \u3053\u3093\u306b\u3061\u306f",
        "control characters inside text": "Beware\x01 of the\x07 dog\x1b[31m, it bites\x7f\x9b.",
        # A ROS string is a C string on the wire: a NUL ends it, the rest never reaches the node.
        "NUL inside text": "Stop here\x00 and this part is lost in transit.",
    }
    ignored_as_empty = ["", "   \t\n  ", "\x00\x01\x07\x1b\x7f\x9b"]
    before = counters(node)

    def bad():
        for text in ignored_as_empty:
            client.say(text)
        client.say(huge)  # longer than text.max_chars (default 10000): rejected whole
        for text in spoken_as_text.values():
            client.say(text)

    mark, latencies = around_bad_input(node, bad)
    cleaned = {"control characters inside text": "Beware of the dog[31m, it bites.",
               "NUL inside text": "Stop here"}
    expected = [len(BEFORE), len(QUEUED)]
    expected += [len(cleaned.get(name, text).strip()) for name, text in spoken_as_text.items()]
    expected += [len(AFTER)]
    assert [m.text_length for m in latencies] == expected, "each bad text spoken once, in order"
    assert all(m.frames > 0 and m.error == "" for m in latencies)

    deadline = time.monotonic() + TIMEOUT
    while True:  # counters are published every 0.1 s; wait for the one that has them all
        after = counters(node)
        if after["texts_received"] - before["texts_received"] == 12 or time.monotonic() > deadline:
            break
    delta = {k: after[k] - before[k] for k in after}
    # 3 of ours + 3 empty + 1 too long + 5 spoken bad texts
    assert delta == dict(texts_received=12, empty=3, rejected=1, too_long=1, dropped=0, utterances=8,
                         errors=0)
    log = node.log(20000)
    assert "text of 100000 characters rejected: longer than text.max_chars=10000" in log
    assert "empty text ignored" in log
    assert node.state() == "active"


def test_huge_text_when_allowed_is_split_bounded_and_stoppable(node):
    """With text.max_chars raised, a 100,000-character text is accepted as ONE queued text (not 2,000
    queue entries that would push everything else out), starts speaking at once, and stop ends it."""
    client = node.client
    node.set_params(text__max_chars=100_000)
    try:
        huge = ("The quick brown robot jumps over the lazy dog. " * 2200)[:100_000]
        mark = client.mark()
        client.say(BEFORE)
        client.say(huge)
        client.say(QUEUED)  # waits behind the huge text
        assert client.wait_for(lambda: len(client.latencies(mark["latency"])) >= 3, TIMEOUT), node.log()
        status = node.status()
        assert int(status["queue_depth"]) == 1, "the huge text is one queue entry; QUEUED still waits"
        response = client.stop()
        assert response.success and "cleared 1 queued text" in response.message, response.message
        assert client.wait_done(mark, TIMEOUT), node.log()
        assert client.stream_problems(mark["chunks"]) == []
        lengths = [m.text_length for m in client.latencies(mark["latency"])]
        assert lengths[0] == len(BEFORE) and len(QUEUED) not in lengths[1:]
        assert all(0 < n <= 200 for n in lengths[1:]), "the huge text is spoken sentence by sentence"
        # No later sentence of the stopped text is spoken: the next utterance is the next text sent.
        n_spoken = len(lengths)
        mark_after = client.mark()
        client.say(AFTER)
        assert client.wait_done(mark_after, TIMEOUT), node.log()
        assert [m.text_length for m in client.latencies(mark["latency"])][n_spoken:] == [len(AFTER)]
    finally:
        node.set_params(text__max_chars=10000)
    around_bad_input(node, lambda: None)  # and the node speaks normally afterwards


def test_text_at_the_cap_without_any_sentence_boundary_starts_quickly(node):
    """The engine splits a boundary-less text by its token budget on the worker thread: at the default cap
    (10,000 characters) that takes well under a second, then the pieces play."""
    client = node.client
    mark = client.mark()
    t0 = client.say("a" * 10000)
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), node.log()
    first_audio_s = client.chunks[mark["chunks"]].at - t0
    client.stop()
    assert client.wait_done(mark, TIMEOUT), node.log()
    assert client.stream_problems(mark["chunks"]) == []
    print(f"10,000 characters without boundaries: first chunk after {first_audio_s:.2f} s")


def test_bad_parameters_at_runtime_are_refused_with_a_reason(node):
    client = node.client
    bad = {
        "sampling.max_new_tokens": "many",  # wrong type
        "sampling.top_p": 1.5,  # out of range
        "sampling.temperature": 0.0,  # division by zero in sampling
        "sampling.repetition_penalty": 0.0,
        "queue.max_size": 0,
        "queue.policy": "drop_everything",
        "streaming.chunk_frames": 2.5,  # wrong type (integer parameter)
        "voice.speaker": "nobody_such",  # load-time parameters are refused while configured
        "voice.language": "Klingon",
        "model": "/elsewhere",
        "max_seq_len": 4096,
        "text.max_chars": -1,
    }
    before = client.get_params(list(bad))
    mark = client.mark()
    client.say(BEFORE)
    results = dict(zip(bad, client.set_params(bad)))
    for name, (ok, reason) in results.items():
        assert not ok, f"{name}={bad[name]!r} was accepted"
        assert reason, f"{name}: refused without a reason"
    assert "type" in results["sampling.max_new_tokens"][1].lower()
    assert "type" in results["streaming.chunk_frames"][1].lower()
    assert "range" in results["sampling.top_p"][1] and "range" in results["queue.max_size"][1]
    assert "> 0" in results["sampling.temperature"][1] and "> 0" in results["sampling.repetition_penalty"][1]
    assert "queue.policy" in results["queue.policy"][1]
    for name in ("voice.speaker", "voice.language", "model", "max_seq_len"):
        assert "cleanup" in results[name][1], results[name]
    # compared as repr: NaN (a sampling number's "model default") is not == itself
    after = client.get_params(list(bad))
    assert list(map(repr, after)) == list(map(repr, before)), "a refused value must not be applied"
    wait_spoken(node, mark, [len(BEFORE)])
    assert node.state() == "active"
