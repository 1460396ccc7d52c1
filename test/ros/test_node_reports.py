"""What the node tells the person or the monitoring that runs it (real node processes, real DDS):

- a failed configure is an ERROR on /diagnostics with its reason, kept until a configure succeeds (before:
  nothing was published while unconfigured);
- a node started without autostart says once how to configure it, and counts and logs the texts it refuses
  (before: it had no text subscription until configure, so texts were lost unseen);
- log lines say the true counts: texts dropped under a flood (before: "dropped 1" once, throttled, while
  /diagnostics counted them all) and the sentences a ~/stop leaves unspoken (before: "cleared 0").
"""
import re

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

MISSING_MODEL = "/nonexistent/typo"
ERROR = 2


def logged_count(node, pattern: str) -> int:
    """The counts of every log line matching `pattern` (its group 1: the count), added up."""
    return sum(int(n) for n in re.findall(pattern, node.log(tail=10**7)))


def test_failed_configure_is_an_error_on_diagnostics_until_a_configure_succeeds(
    tmp_path, node_factory, base_overrides, tiny_custom_voice_checkpoint
):
    node = node_factory(tmp_path, dict(base_overrides, model=MISSING_MODEL, autostart=True))
    try:
        client = node.client
        errors = lambda: [i for i, s in enumerate(client.statuses()) if s["_level"] == ERROR]  # noqa: E731
        assert client.wait_for(errors, TIMEOUT), node.log()
        first = errors()[0]
        error = client.statuses()[first]
        assert error["_message"].startswith("configure failed: "), error
        assert MISSING_MODEL in error["_message"], error
        assert error["lifecycle_state"] == "unconfigured"
        # Kept: the next statuses report it too.
        assert client.wait_for(lambda: len(client.statuses()) >= first + 4, TIMEOUT)
        assert [s["_message"] for s in client.statuses()[first:]] == [error["_message"]] * len(
            client.statuses()[first:]
        )
        assert node.state() == "unconfigured"
        node.set_params(model=str(tiny_custom_voice_checkpoint))
        assert client.change_state("configure"), node.log()
        status = node.status()
        assert status["_level"] != ERROR and status["_message"] == "not active (inactive)", status
    finally:
        assert node.close() == 0, node.log()


def test_a_node_without_autostart_says_how_to_configure_it_and_counts_refused_texts(
    tmp_path, node_session, base_overrides
):
    with node_session(tmp_path, base_overrides, activate=False) as node:
        client = node.client
        hint = f"`ros2 lifecycle set {node.namespace}/qwen3_tts configure`"
        assert node.log(tail=10**7).count(hint) == 1, node.log()
        assert client.wait_for_subscriber(TIMEOUT), "tts/text and tts/text_stream exist before configure"
        n_texts = 3
        for i in range(n_texts):
            client.say(f"Text number {i} to an unconfigured node.")
        client.send_chunk("s1", 0, "A stream chunk too.", final=True)
        rejected = lambda: client.statuses() and int(client.statuses()[-1]["rejected"])  # noqa: E731
        assert client.wait_for(lambda: rejected() == n_texts, TIMEOUT), node.log()
        status = node.status()
        assert status["texts_received"] == str(n_texts) and status["stream_rejected_inactive"] == "1", status
        texts = r"(\d+) text\(s\) rejected: node is unconfigured, not active"
        assert client.wait_for(lambda: logged_count(node, texts) == n_texts, TIMEOUT), node.log()
        chunks = r"(\d+) text stream chunk\(s\) rejected: node is unconfigured, not active"
        assert client.wait_for(lambda: logged_count(node, chunks) == 1, TIMEOUT), node.log()
        assert client.count("chunks") == 0


@pytest.fixture(scope="module")
def active_node(tmp_path_factory, node_session, base_overrides):
    overrides = dict(base_overrides, **{"queue.max_size": 1, "sampling.max_new_tokens": 2048})
    with node_session(tmp_path_factory.mktemp("node_reports"), overrides) as node:
        yield node


def test_drops_under_a_flood_are_logged_with_their_true_count(active_node, long_text):
    node, client = active_node, active_node.client
    node.set_params(text__split_sentences=False)
    before = int(node.status()["dropped"])
    mark = client.mark()
    client.say(long_text)  # speaks for many frames: the flood arrives while it is being spoken
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), node.log()
    n_flood = 20
    for i in range(n_flood):
        client.say(f"Flood text {i}.")

    def accounted() -> bool:  # every text spoken (its latency message) or dropped
        statuses = client.statuses(mark["diagnostics"])
        if not statuses:
            return False
        status = statuses[-1]
        spoken = client.count("latency") - mark["latency"]
        return spoken + int(status["dropped"]) - before == 1 + n_flood and status["speaking"] == "false"

    assert client.wait_for(accounted, TIMEOUT), node.log()
    dropped = int(node.status()["dropped"]) - before
    assert dropped >= 2, f"the flood was meant to overflow queue.max_size=1 ({dropped} dropped)"
    pattern = r"queue: dropped (\d+) waiting text\(s\)"
    assert client.wait_for(lambda: logged_count(node, pattern) == dropped, TIMEOUT), (dropped, node.log())


def test_stop_says_how_many_sentences_of_the_text_it_left_unspoken(active_node, long_text):
    node, client = active_node, active_node.client
    node.set_params(text__split_sentences=True)
    later = [f"This is sentence number {i} of the text." for i in range(11)]
    mark = client.mark()
    client.say(" ".join([long_text, *later]))  # 12 sentences, the first a long one
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), node.log()
    response = client.stop()
    assert response.success, response.message
    assert client.wait_done(mark, TIMEOUT), node.log()
    begun = len(client.latencies(mark["latency"]))  # every begun sentence ends with a final chunk + latency
    assert begun < 12
    expected = f"stopped the current utterance and the {12 - begun} sentence(s) of its text after it; " \
               "cleared 0 queued text(s)"
    assert response.message == expected
    assert f"~/stop: {expected}" in node.log()
