"""The ~/say action over real DDS: the node in its own process, a real rclpy ActionClient (TtsClient) here.

Ordering is asserted with timestamps, never with speeds: the node stamps each AudioChunk (ROS clock, i.e.
system time) before publishing it, and the client reads the same clock when a result arrives, so
"the result came after the final chunk" is `result_stamp_ns >= final chunk stamp`, whatever the load.
"""
import pytest

rclpy = pytest.importorskip("rclpy")

TIMEOUT = 120.0
FLOOD = 200
SAMPLE_RATE = 24000
BYTES_PER_SAMPLE = 2  # int16 (output.format default)
# audio_seconds is float32: the node sums chunk durations in float64 and rounds once; 1e-6 relative covers
# that rounding (float32: 6e-8 relative) with room.
AUDIO_SECONDS_REL = 1e-6
# wait_for_playback: the node starts the playback clock after the first chunk's publish call returns and
# compares time.monotonic() with it; the client compares system-clock stamps. 1 ms covers the float32
# rounding of audio_seconds (< 1 us for minutes of audio) and any slew between the two clocks over seconds.
PLAYBACK_CLOCK_S = 1e-3


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, node_factory, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"sampling.max_new_tokens": 12, "streaming.first_chunk_frames": 1,
                        "streaming.chunk_frames": 4})
    running = node_factory(tmp_path_factory.mktemp("say_action"), overrides, env={"OMP_NUM_THREADS": "1"})
    try:
        assert running.state() == "unconfigured"
        yield running
    finally:
        rc = running.close()
        assert rc == 0, f"node exited with {rc}\n{running.log()}"
        log = running.proc.log_text()
        assert "Traceback" not in log and "observer failed" not in log, log[-4000:]


def active(node) -> None:
    client = node.client
    state = client.get_state()
    if state == "unconfigured":
        assert client.change_state("configure"), node.log()
        state = "inactive"
    if state == "inactive":
        assert client.change_state("activate"), node.log()
    assert client.get_state() == "active"


def defaults(node) -> None:
    node.set_params(sampling__max_new_tokens=12, streaming__chunk_frames=4, text__split_sentences=True,
                    queue__policy="queue", queue__max_size=16)


def describe(goals) -> str:
    return ", ".join(f"{g.text[:20]!r}: accepted {g.accepted}, {len(g.feedback)} feedback, "
                     f"{g.status or 'no result'}" for g in goals[:5])


def wait_finished(node, goals, timeout=TIMEOUT):
    assert node.client.wait_for(lambda: all(g.finished for g in goals), timeout), (
        f"{sum(not g.finished for g in goals)} of {len(goals)} goals got no result within {timeout:.0f} s: "
        f"{describe([g for g in goals if not g.finished])}\n{node.log()}")


def wait_first_feedback(node, goal):
    assert node.client.wait_for(lambda: goal.feedback or goal.finished, TIMEOUT), (
        f"no feedback and no result within {TIMEOUT:.0f} s: {describe([goal])}\n{node.log()}")
    assert goal.feedback, f"goal ended before any feedback: {goal.status} {goal.result}"


def wait_answered(node, goal):
    assert node.client.wait_for(lambda: goal.accepted is not None, TIMEOUT), (
        f"no goal response within {TIMEOUT:.0f} s\n{node.log()}")


def test_goals_are_rejected_unless_the_node_is_active(node):
    client = node.client
    goal = client.say_and_wait("Hello.", timeout=TIMEOUT)
    assert goal.accepted is False and goal.results == 0
    assert client.change_state("configure"), node.log()
    goal = client.say_and_wait("Hello.", timeout=TIMEOUT)
    assert goal.accepted is False
    assert "say goal rejected: node is unconfigured, not active" in node.log(20000)
    assert client.change_state("activate"), node.log()
    goal = client.say_and_wait(" \t ", timeout=TIMEOUT)
    assert goal.accepted is False, "an empty text is rejected"
    goal = client.say_and_wait("Hello.", timeout=TIMEOUT)
    assert goal.accepted and goal.status == "succeeded" and goal.result.ended_by == "done"


def test_feedback_per_chunk_and_the_result_after_the_final_chunk(node):
    active(node)
    defaults(node)
    client = node.client
    mark = client.mark()
    goal = client.say_and_wait("Hello there. See you later.", timeout=TIMEOUT)
    assert goal.accepted and goal.status == "succeeded", (goal.status, goal.result)
    result = goal.result
    assert (result.ended_by, result.error) == ("done", "")
    assert client.wait_done(mark, TIMEOUT), node.log()
    groups = client.utterances(mark["chunks"])
    assert list(result.utterance_ids) == sorted(groups) and len(groups) == 2, "one goal, two sentences"
    assert client.stream_problems(mark["chunks"]) == []
    chunks = [r.msg for uid in sorted(groups) for r in groups[uid]]
    # One feedback per published chunk, in order, with running totals of the whole goal.
    feedback = [r.msg for r in goal.feedback]
    assert [f.utterance_id for f in feedback] == [c.utterance_id for c in chunks]
    frames = [sum(c.frame_count for c in chunks[:i + 1]) for i in range(len(chunks))]
    assert [f.frames for f in feedback] == frames
    total_s = sum(len(c.audio.data) for c in chunks) / BYTES_PER_SAMPLE / SAMPLE_RATE
    assert feedback[-1].audio_seconds == pytest.approx(total_s, rel=AUDIO_SECONDS_REL)
    assert result.audio_seconds == pytest.approx(total_s, rel=AUDIO_SECONDS_REL)
    assert result.time_to_first_audio_ms > 0
    final = chunks[-1]
    assert final.is_final and goal.result_stamp_ns >= stamp_ns(final), "result before the final chunk"
    latencies = {m.utterance_id: m for m in client.latencies(mark["latency"])}
    assert {latencies[u].stopped_by for u in result.utterance_ids} <= {"eos", "max_new_tokens"}


def test_wait_for_playback_ends_when_the_audio_would_have_played(node):
    active(node)
    defaults(node)
    node.set_params(sampling__max_new_tokens=25)
    client = node.client
    mark = client.mark()
    goal = client.say_and_wait("Hello there. See you later.", wait_for_playback=True, timeout=TIMEOUT)
    assert goal.status == "succeeded" and goal.result.ended_by == "done", (goal.status, goal.result)
    groups = client.utterances(mark["chunks"])
    first = groups[min(groups)][0].msg
    playback_end_ns = stamp_ns(first) + (goal.result.audio_seconds - PLAYBACK_CLOCK_S) * 1e9
    assert goal.result_stamp_ns >= playback_end_ns, (
        f"result {(goal.result_stamp_ns - stamp_ns(first)) / 1e9:.3f} s after the first chunk, "
        f"audio {goal.result.audio_seconds:.3f} s")


@pytest.fixture
def long_goal_settings(node):
    """One long utterance in 16-frame chunks: a cancel after the first (1-frame) chunk lands mid-utterance."""
    active(node)
    defaults(node)
    node.set_params(sampling__max_new_tokens=2048, streaming__chunk_frames=16, text__split_sentences=False)
    yield
    defaults(node)


def test_cancel_stops_within_one_chunk_with_a_final_chunk(node, long_text, long_goal_settings):
    client = node.client
    mark = client.mark()
    goal = client.send_goal(long_text)
    wait_first_feedback(node, goal)
    frames_seen = goal.feedback[-1].msg.frames
    client.cancel_goal(goal)
    wait_finished(node, [goal])
    assert goal.status == "canceled" and goal.result.ended_by == "cancelled", (goal.status, goal.result)
    assert client.wait_done(mark, TIMEOUT), node.log()
    assert client.stream_problems(mark["chunks"]) == []
    (uid,) = goal.result.utterance_ids
    msgs = [r.msg for r in client.utterances(mark["chunks"])[uid]]
    assert msgs[-1].is_final
    assert sum(m.frame_count for m in msgs) <= frames_seen + 16, "more than one chunk after the cancel"
    (lat,) = [m for m in client.latencies(mark["latency"]) if m.utterance_id == uid]
    assert lat.stopped_by == "stopped" and lat.interrupted


def test_deactivate_mid_goal_ends_the_speaking_and_the_queued_goals(node, long_text, long_goal_settings):
    client = node.client
    speaking = client.send_goal(long_text)
    queued = client.send_goal("Queued behind it.")
    wait_first_feedback(node, speaking)
    assert client.change_state("deactivate"), node.log()
    wait_finished(node, [speaking, queued])
    for goal in (speaking, queued):
        assert goal.status == "aborted" and goal.result.ended_by == "deactivated", (goal.status, goal.result)
    assert list(queued.result.utterance_ids) == [] and queued.result.audio_seconds == 0.0
    rejected = client.say_and_wait("While inactive.", timeout=TIMEOUT)
    assert rejected.accepted is False
    assert client.change_state("activate"), node.log()


def test_interrupt_preempts_stop_aborts_and_a_full_queue_rejects(node, long_text, long_goal_settings):
    client = node.client
    node.set_params(queue__policy="interrupt")
    first = client.send_goal(long_text)
    wait_first_feedback(node, first)
    node.set_params(sampling__max_new_tokens=12)
    second = client.send_goal("Now this.")
    wait_finished(node, [first, second])
    assert first.status == "aborted" and first.result.ended_by == "preempted", (first.status, first.result)
    assert second.status == "succeeded", (second.status, second.result)

    node.set_params(queue__policy="queue", queue__max_size=1, sampling__max_new_tokens=2048)
    speaking = client.send_goal(long_text)
    wait_first_feedback(node, speaking)
    waiting = client.send_goal("Waiting.")
    wait_answered(node, waiting)
    refused = client.send_goal("No room.")
    wait_answered(node, refused)
    assert waiting.accepted and refused.accepted is False, "queue.max_size=1: one waits, the next is refused"
    assert "say goal rejected: queue full" in node.log(20000)
    assert client.stop().success
    wait_finished(node, [speaking, waiting])
    for goal in (speaking, waiting):
        assert goal.status == "aborted" and goal.result.ended_by == "stopped", (goal.status, goal.result)


@pytest.mark.parametrize("policy", ["queue", "interrupt"])
def test_a_flood_of_goals_ends_every_goal_exactly_once(node, policy):
    active(node)
    defaults(node)
    node.set_params(sampling__max_new_tokens=2, queue__policy=policy, queue__max_size=FLOOD)
    client = node.client
    mark = client.mark()
    goals = [client.send_goal(f"Goal {i}.") for i in range(FLOOD)]
    wait_finished(node, goals, timeout=600.0)
    assert all(g.accepted for g in goals), f"{sum(not g.accepted for g in goals)} rejected\n{node.log()}"
    assert [g.results for g in goals] == [1] * FLOOD
    ended = [g.result.ended_by for g in goals]
    if policy == "queue":
        assert set(ended) == {"done"} and {g.status for g in goals} == {"succeeded"}
    else:
        assert ended[-1] == "done" and set(ended) <= {"done", "preempted"}, sorted(set(ended))
    ids = [u for g in goals for u in g.result.utterance_ids]
    assert len(ids) == len(set(ids)), "an utterance counted for two goals"
    assert client.wait_for(lambda: set(ids) <= {m.utterance_id for m in client.latencies(mark["latency"])},
                           TIMEOUT)
    spoken = {r.msg.utterance_id for r in client.chunks[mark["chunks"]:]}
    assert spoken == set(ids), "every utterance spoken belongs to exactly one goal"
    defaults(node)


def test_latency_and_log_say_why_each_utterance_ended(node, long_text):
    """max_new_tokens, stopped and max_seq_len in tts/latency's stopped_by and in the node's log line."""
    active(node)
    defaults(node)
    client = node.client
    node.set_params(text__split_sentences=False)
    _, _, (lat,) = node.speak(long_text)
    assert lat.stopped_by == "max_new_tokens" and 0 < lat.frames <= 12, (lat.stopped_by, lat.frames)
    # max_seq_len is applied at configure: cleanup, set its minimum, configure again. long_text runs
    # longer than its prompt leaves room for (> LONG_CHECK_FRAMES = 30 frames without an end; the engine may
    # split the text into pieces that each fit, so the frame count itself is not bounded by it).
    assert client.change_state("deactivate") and client.change_state("cleanup"), node.log()
    node.set_params(max_seq_len=64, prefill_buckets=[0], sampling__max_new_tokens=2048)
    try:
        active(node)
        _, _, (lat,) = node.speak(long_text)
        assert lat.stopped_by == "max_seq_len" and lat.frames > 0 and not lat.interrupted, lat
        log = node.log(20000)
        assert "ended by max_seq_len" in log and "reached max_seq_len=64" in log, log[-3000:]
    finally:
        assert client.change_state("deactivate") and client.change_state("cleanup"), node.log()
        node.set_params(max_seq_len=2048, prefill_buckets=[32, 64, 128, 256])
        defaults(node)
