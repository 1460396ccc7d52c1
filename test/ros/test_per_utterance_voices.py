"""Per-utterance voices over real DDS: named voices from a voice file (voices.file), chosen by tts/request
messages and say goals (a real ActionClient), added and removed at run time, with an urgency.

Exactness: greedy decoding on the CPU in float32 (the node's dtypes stop at float32; the float64 engine-level
twin is test/engine/test_voice_book.py). Two node processes (OMP_NUM_THREADS=1 each) that speak the same
prompt run the same float32 operations in the same order, so "exactly the audio" is byte equality
(bound 0): a voice switch that left state behind, or a voice prepared differently from the voice.*
parameters' voice, would show."""
import pytest

rclpy = pytest.importorskip("rclpy")

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1"}
TEXT_B, TEXT_A = "The first sentence", "Something else entirely"
# Two voices of each kind, in the voice file's YAML and as the voice.* parameters of a node with it alone.
VOICES = {
    "custom_voice": ({"speaker": "vivian", "language": "english"},
                     {"speaker": "ryan", "instruct": "Speak quickly."}),
    "voice_design": ({"instruct": "A calm, low voice."},
                     {"instruct": "A bright voice.", "language": "german"}),
    "base": ({"ref_audio": "REF", "x_vector_only": True}, {"ref_audio": "REF", "ref_text": "A reference."}),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_custom_voice_checkpoint):
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    root = tmp_path_factory.mktemp("per_utterance_checkpoints")
    return {"custom_voice": tiny_custom_voice_checkpoint,
            "base": write_tiny_checkpoint(root / "base", "base", seed=0),
            "voice_design": write_tiny_checkpoint(root / "voice_design", "voice_design", seed=2)}


@pytest.fixture(scope="module")
def reference_wav(tmp_path_factory):
    import numpy as np
    import soundfile as sf

    t = np.arange(48000) / 24000
    path = tmp_path_factory.mktemp("per_utterance_ref") / "ref.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 24000)
    return str(path)


def voices_of(kind: str, reference_wav: str) -> tuple[dict, dict]:
    return tuple({k: reference_wav if v == "REF" else v for k, v in voice.items()} for voice in VOICES[kind])


def write_voice_file(path, voices: dict[str, dict]) -> str:
    import json

    path.write_text(json.dumps({"default": "a", "voices": voices}))  # JSON is YAML
    return str(path)


def overrides(base_overrides, model) -> dict:
    return dict(base_overrides, model=str(model), **{"sampling.max_new_tokens": 12,
                                                     "text.split_sentences": False})


def audio_of(node, send) -> bytes:
    """send() one text; the audio bytes of its one utterance, once the node is idle again."""
    client = node.client
    mark = client.mark()
    send()
    assert client.wait_done(mark, TIMEOUT), f"no complete utterance\n{node.log()}"
    groups = client.utterances(mark["chunks"])
    assert len(groups) == 1 and client.stream_problems(mark["chunks"]) == [], groups.keys()
    return b"".join(bytes(r.msg.audio.data) for r in next(iter(groups.values())))


@pytest.mark.parametrize("kind", ["custom_voice", "voice_design", "base"])
def test_per_utterance_voice_equals_a_node_with_that_voice_alone(kind, checkpoints, reference_wav, tmp_path,
                                                                 node_session, base_overrides):
    """tts/request with voice b, then a, then b, and a say goal with voice b: each b utterance is exactly the
    audio of a node configured with b alone (voice.* parameters); the switch to a and back leaves no trace."""
    a, b = voices_of(kind, reference_wav)
    voice_file = write_voice_file(tmp_path / "voices.yaml", {"a": a, "b": b})
    with node_session(tmp_path / "multi", dict(overrides(base_overrides, checkpoints[kind]),
                                               **{"voices.file": voice_file}), env=ENV) as node:
        client = node.client
        first_b = audio_of(node, lambda: client.request(TEXT_B, voice="b"))
        a_audio = audio_of(node, lambda: client.request(TEXT_B, voice="a"))
        third_b = audio_of(node, lambda: client.request(TEXT_B, voice="b"))
        goal_b = audio_of(node, lambda: client.send_goal(TEXT_B, voice="b"))
        default_a = audio_of(node, lambda: client.say(TEXT_A))  # tts/text: the file's default voice
        named_a = audio_of(node, lambda: client.request(TEXT_A, voice="a"))
        assert "voice a: " in node.log(100000) and "voice b: " in node.log(100000), "each voice is logged"
    assert first_b and first_b != a_audio, "the two voices must differ, or the test shows nothing"
    assert third_b == first_b and goal_b == first_b
    assert default_a == named_a
    alone = {f"voice.{k}": v for k, v in b.items()}
    with node_session(tmp_path / "alone", dict(overrides(base_overrides, checkpoints[kind]), **alone),
                      env=ENV) as node:
        assert audio_of(node, lambda: node.client.say(TEXT_B)) == first_b


@pytest.fixture(scope="module")
def custom_node(tmp_path_factory, checkpoints, reference_wav, node_session, base_overrides):
    a, b = voices_of("custom_voice", reference_wav)
    root = tmp_path_factory.mktemp("per_utterance_custom")
    # plain: the model's first speaker, as the long_text fixture checked that text runs long with
    voice_file = write_voice_file(root / "voices.yaml", {"a": a, "b": b, "plain": {}})
    with node_session(root, dict(overrides(base_overrides, checkpoints["custom_voice"]),
                                 **{"voices.file": voice_file}), env=ENV) as running:
        yield running


def test_per_utterance_refusals_are_counted_and_the_goal_result_says_why(custom_node):
    client = custom_node.client
    goal = client.say_and_wait("Hello.", voice="nobody", timeout=TIMEOUT)
    assert goal.accepted and goal.status == "aborted", (goal.status, goal.result)
    assert goal.result.ended_by == "rejected", goal.result
    assert "unknown voice 'nobody'; known: ['a', 'b', 'plain']" in goal.result.error
    goal = client.say_and_wait("Hello.", language="Klingon", timeout=TIMEOUT)
    assert goal.result.ended_by == "rejected" and "language 'Klingon' not supported" in goal.result.error
    goal = client.say_and_wait("Hello.", urgency="now", timeout=TIMEOUT)
    assert goal.result.ended_by == "rejected" and "urgency must be" in goal.result.error
    mark = client.mark()
    client.request("Hello.", voice="nobody")

    def counted() -> bool:
        statuses = client.statuses(mark["diagnostics"])
        return bool(statuses) and int(statuses[-1].get("request_rejected", 0)) >= 4

    assert client.wait_for(counted, TIMEOUT), custom_node.log()
    assert "request rejected: unknown voice 'nobody'" in custom_node.log(100000)
    assert client.count("chunks") == mark["chunks"], "nothing was spoken for a refused request"


def test_per_utterance_voices_added_and_removed_at_run_time(custom_node):
    client = custom_node.client
    answer = client.set_voice("fast", "{speaker: ryan, instruct: Speak quickly.}")
    assert answer.success, answer.message
    assert "added voice fast: " in answer.message and "prepared in" in answer.message
    added = audio_of(custom_node, lambda: client.request(TEXT_B, voice="fast"))
    assert added == audio_of(custom_node, lambda: client.request(TEXT_B, voice="b")), "same settings as b"
    answer = client.set_voice("fast", "{speeker: ryan}")
    assert not answer.success and "voices.fast.speeker: unknown field" in answer.message
    answer = client.set_voice("a", "{speaker: ryan}")
    assert not answer.success and "is the default voice" in answer.message
    assert client.remove_voice("fast").success
    goal = client.say_and_wait("Hello.", voice="fast", timeout=TIMEOUT)
    assert goal.result.ended_by == "rejected" and "unknown voice 'fast'" in goal.result.error
    answer = client.remove_voice("a")
    assert not answer.success and "is the default voice" in answer.message


def test_per_utterance_urgency_interrupt_stops_the_current_text_and_speaks_next(custom_node, long_text):
    """A goal with urgency interrupt stops the goal being spoken at once (ABORTED, "preempted"), is spoken
    next, and the goal that was waiting is still spoken after it (nothing queued is lost)."""
    client = custom_node.client
    custom_node.set_params(sampling__max_new_tokens=60)
    try:
        speaking = client.send_goal(long_text, voice="plain")
        assert client.wait_for(lambda: speaking.feedback or speaking.finished, TIMEOUT), custom_node.log()
        waiting = client.send_goal("Waiting in the queue.")
        assert client.wait_for(lambda: waiting.accepted is not None, TIMEOUT)
        urgent = client.send_goal("Stop right there.", voice="b", urgency="interrupt")
        assert client.wait_for(lambda: all(g.finished for g in (speaking, waiting, urgent)), TIMEOUT), (
            custom_node.log())
    finally:
        custom_node.set_params(sampling__max_new_tokens=12)
    assert (speaking.status, speaking.result.ended_by) == ("aborted", "preempted"), speaking.result
    assert (urgent.status, waiting.status) == ("succeeded", "succeeded"), (urgent.result, waiting.result)
    assert max(urgent.result.utterance_ids) < min(waiting.result.utterance_ids), "the urgent goal went first"
