"""The qwen3_tts node as a real process over real DDS, active, greedy: what comes out of /tts/audio.

One node process (tiny random custom_voice checkpoint, CPU) serves the whole module; tests set per-utterance
parameters through the standard set_parameters service. The engine is also loaded in this process (the
`engine` fixture, conftest.py) to compute the expected output of the same request.
"""
import numpy as np
import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

SHORT_FRAMES = 20  # max_new_tokens for the quick utterances


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, engine, node_session, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"voice.speaker": engine.get_supported_speakers()[0]})
    with node_session(tmp_path_factory.mktemp("stream_node"), overrides) as running:
        yield running


def engine_chunks(engine, text, max_new_tokens):
    from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest

    request = SpeechRequest(text=text, mode="custom_voice", language="Auto",
                            speaker=engine.get_supported_speakers()[0],
                            sampling=SamplingParams(do_sample=False, subtalker_dosample=False,
                                                    max_new_tokens=max_new_tokens))
    stream = engine.stream(request, first_chunk_frames=1, chunk_frames=4, pcm_format="int16")
    return list(stream), stream.stats


def test_sentence_stream_equals_engine_output(node, engine):
    text = "The robot arm is ready to pick up the red cup."
    node.set_params(sampling__max_new_tokens=SHORT_FRAMES)
    _, groups, latencies = node.speak(text)
    assert len(groups) == 1, "one sentence must give one utterance"
    (uid, received), = groups.items()
    msgs = [r.msg for r in received]
    assert [m.sequence for m in msgs] == list(range(len(msgs)))
    assert [m.is_final for m in msgs] == [False] * (len(msgs) - 1) + [True]
    frame = 0
    for m in msgs:
        assert m.frame_start == frame
        assert len(m.audio.data) == m.frame_count * 1920 * 2
        assert (m.info.sample_rate, m.info.sample_format, m.info.channels) == (24000, "S16LE", 1)
        frame += m.frame_count
    expected, stats = engine_chunks(engine, text, SHORT_FRAMES)
    want_frames = [(c.frame_start, c.frame_count) for c in expected]
    assert [(m.frame_start, m.frame_count) for m in msgs] == want_frames
    got = np.frombuffer(b"".join(bytes(m.audio.data) for m in msgs), dtype="<i2")
    want = np.concatenate([c.pcm for c in expected]).astype("<i2")
    assert got.size == want.size == stats.frames * 1920
    np.testing.assert_array_equal(got, want)
    assert [m.utterance_id for m in latencies] == [uid]


def test_latency_message_and_diagnostics(node):
    _, groups, latencies = node.speak("Please bring me a glass of water.")
    (lat,) = latencies
    frames = sum(r.msg.frame_count for r in next(iter(groups.values())))
    assert lat.frames == frames > 0
    assert lat.audio_seconds == pytest.approx(frames * 0.08, rel=1e-4)
    assert lat.text_length == len("Please bring me a glass of water.")
    assert 0 < lat.prefill_ms <= lat.time_to_first_audio_ms <= lat.end_to_end_first_audio_ms
    assert lat.end_to_end_first_audio_ms == pytest.approx(lat.queue_wait_ms + lat.time_to_first_audio_ms,
                                                         abs=1.0)
    assert lat.time_to_first_audio_ms < lat.synthesis_seconds * 1e3
    assert lat.real_time_factor == pytest.approx(lat.audio_seconds / lat.synthesis_seconds, rel=1e-3)
    assert 0 < lat.frame_ms_p50 <= lat.frame_ms_p95 <= lat.frame_ms_max
    assert not lat.interrupted and lat.error == ""

    status = node.status()
    assert status["lifecycle_state"] == "active"
    assert status["_level"] == 0
    assert int(status["utterances"]) >= 2
    assert float(status["time_to_first_audio_ms_p50"]) > 0
    assert float(status["time_to_first_audio_ms_p95"]) >= float(status["time_to_first_audio_ms_p50"])
    assert float(status["rtf"]) == pytest.approx(lat.real_time_factor, rel=1e-2)
    assert float(status["ms_per_frame"]) > 0
    assert status["cuda_graphs_captured"] == "false"  # CPU
    assert status["frame_path"].startswith("eager (auto on cpu: ")  # the chooser's pick and its reason
    assert float(status["gpu_memory_allocated_mb"]) == 0.0
    assert int(status["queue_depth"]) == 0
    for key in ("dropped", "rejected", "empty", "capture_time_s"):
        assert key in status


def test_speaking_toggles_true_then_false(node):
    mark, groups, _ = node.speak("Turning left at the next corner.")
    speaking = [r for r in node.client.speaking[mark["speaking"]:]]
    assert [r.msg.data for r in speaking] == [True, False]
    chunks = next(iter(groups.values()))
    # true no later than the first chunk's arrival plus delivery jitter, false after the final chunk was sent
    assert speaking[0].at <= chunks[0].at + 0.5
    assert speaking[1].at >= chunks[-1].at - 0.5


def test_empty_text_ignored_and_counted(node):
    before = int(node.status()["empty"])
    mark = node.client.mark()
    node.client.say("   ")
    node.client.say("")
    for _ in range(50):  # each status() waits for a newly published one (period 0.2 s)
        if int(node.status()["empty"]) == before + 2:
            break
    else:
        raise AssertionError(f"empty counter did not reach {before + 2}")
    assert node.client.count("chunks") == mark["chunks"]


def test_stop_service_mid_utterance(node, long_text):
    text = long_text
    node.set_params(sampling__max_new_tokens=2048, text__split_sentences=False)
    client = node.client
    mark = client.mark()
    client.say(text)
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT)
    response = client.stop()
    assert response.success and response.message.startswith("stopped the current utterance"), response.message
    assert client.wait_done(mark, TIMEOUT), node.log()
    groups = client.utterances(mark["chunks"])
    (msgs,) = [[r.msg for r in g] for g in groups.values()]
    assert [m.sequence for m in msgs] == list(range(len(msgs))) and msgs[-1].is_final
    (lat,) = client.latencies(mark["latency"])
    assert lat.interrupted and lat.frames < 2048
    assert lat.frames == sum(m.frame_count for m in msgs)
    node.set_params(sampling__max_new_tokens=SHORT_FRAMES, text__split_sentences=True)


def dropped_now(node) -> int:
    return int(node.status()["dropped"])


def test_queue_policy_burst_drops_oldest(node):
    node.set_params(queue__policy="queue", queue__max_size=2, sampling__max_new_tokens=SHORT_FRAMES)
    texts = [f"Burst message number {i}" + "x" * i for i in range(6)]  # distinct lengths identify them
    dropped_before = dropped_now(node)
    client = node.client
    mark = client.mark()
    for t in texts:
        client.say(t)
    assert client.wait_done(mark, TIMEOUT), node.log()
    spoken = [m.text_length for m in client.latencies(mark["latency"])]
    dropped = dropped_now(node) - dropped_before
    lengths = [len(t) for t in texts]
    assert len(spoken) + dropped == len(texts), (spoken, dropped)
    assert spoken == sorted(spoken) and set(spoken) <= set(lengths), "spoken in order, each text at most once"
    assert spoken[-1] == lengths[-1], "the newest text is never the one dropped"
    assert 2 <= len(spoken) <= 3  # at most one already running + max_size waiting
    assert not any(m.interrupted for m in client.latencies(mark["latency"]))
    node.set_params(queue__max_size=16)


def test_interrupt_policy_new_text_cancels_current(node, long_text):
    text = long_text
    node.set_params(queue__policy="interrupt", sampling__max_new_tokens=2048, text__split_sentences=False)
    client = node.client
    dropped_before = dropped_now(node)
    mark = client.mark()
    client.say(text)
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT)
    node.set_params(sampling__max_new_tokens=SHORT_FRAMES)  # the interrupting texts are short
    last = "Stop, there is an obstacle ahead."
    client.say("Wait, change of plan please.")
    client.say(last)
    assert client.wait_done(mark, TIMEOUT), node.log()
    latencies = client.latencies(mark["latency"])
    groups = client.utterances(mark["chunks"])
    assert all(g[-1].msg.is_final for g in groups.values())
    assert latencies[0].text_length == len(text) and latencies[0].interrupted
    assert latencies[-1].text_length == len(last) and not latencies[-1].interrupted
    assert all(m.interrupted for m in latencies[:-1])
    assert len(latencies) + (dropped_now(node) - dropped_before) == 3
    node.set_params(queue__policy="queue", text__split_sentences=True)
