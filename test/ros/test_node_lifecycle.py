"""The whole lifecycle of the qwen3_tts node, driven through the standard services of a real process.

One node process serves the module; the tests run in file order and each starts by checking the state it
needs: refused parameters, configure failures that leave the node re-configurable, text while inactive,
deactivate and stop mid-utterance, cleanup + configure again with another output format, clean exit.
"""
import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = pytest.mark.ros

MISSING_MODEL = "/nonexistent/qwen3-tts-model"


@pytest.fixture(scope="module")
def node(tmp_path_factory, node_factory, base_overrides):
    overrides = dict(base_overrides, model=MISSING_MODEL)
    running = node_factory(tmp_path_factory.mktemp("lifecycle_node"), overrides)
    yield running
    running.close()


def test_invalid_parameter_values_are_refused(node):
    assert node.state() == "unconfigured"
    results = node.client.set_params({"output.format": "mp3", "device": "gpu0", "queue.policy": "drop"})
    assert [ok for ok, _ in results] == [False, False, False]
    assert "output.format" in results[0][1] and "device" in results[1][1]


def test_missing_model_fails_configure_and_stays_reconfigurable(node, tiny_custom_voice_checkpoint):
    client = node.client
    assert not client.change_state("configure")
    assert client.get_state() == "unconfigured"
    assert MISSING_MODEL in node.log(), "one log line must name the cause"
    node.set_params(model=str(tiny_custom_voice_checkpoint), voice__speaker="nobody_such")
    assert not client.change_state("configure")
    assert client.get_state() == "unconfigured"
    assert "nobody_such" in node.log()
    node.set_params(voice__speaker="")
    assert client.change_state("configure"), node.log()
    assert client.get_state() == "inactive"


def test_load_time_parameters_refused_while_configured(node):
    assert node.state() == "inactive"
    ((ok, reason),) = node.client.set_params({"output.format": "float32"})
    assert not ok and "cleanup" in reason
    node.set_params(sampling__max_new_tokens=20)  # per-utterance: accepted in any state


def test_text_while_inactive_is_rejected_and_counted(node):
    assert node.state() == "inactive"
    client = node.client
    assert client.wait_for_subscriber(TIMEOUT)
    assert client.wait_for(lambda: client.count("audio_info") >= 1, TIMEOUT)
    assert client.audio_info[-1].msg.sample_rate == 24000
    before = int(node.status()["rejected"])
    mark = client.mark()
    client.say("Nobody should hear this.")
    for _ in range(50):
        status = node.status()
        if int(status["rejected"]) == before + 1:
            break
    else:
        raise AssertionError("rejected counter did not increase")
    assert status["lifecycle_state"] == "inactive" and status["_level"] == 1  # WARN: not active
    assert client.count("chunks") == mark["chunks"]


def _start_long(node, text):
    client = node.client
    node.set_params(sampling__max_new_tokens=2048, text__split_sentences=False)
    mark = client.mark()
    client.say(text)
    assert client.wait_for(lambda: client.count("chunks") > mark["chunks"], TIMEOUT), node.log()
    return mark


def test_deactivate_mid_utterance_ends_it_with_a_final_chunk(node, long_text):
    client = node.client
    assert client.change_state("activate"), node.log()
    mark = _start_long(node, long_text)
    assert client.change_state("deactivate"), node.log()
    assert client.get_state() == "inactive"
    assert client.wait_done(mark, TIMEOUT), "final chunk, latency, speaking=false must follow the deactivate"
    (msgs,) = [[r.msg for r in g] for g in client.utterances(mark["chunks"]).values()]
    assert [m.sequence for m in msgs] == list(range(len(msgs))) and msgs[-1].is_final
    (lat,) = client.latencies(mark["latency"])
    assert lat.interrupted and lat.frames < 2048


def test_reactivate_and_stop_service(node, long_text):
    client = node.client
    assert client.change_state("activate"), node.log()
    mark = _start_long(node, long_text)
    response = client.stop()
    assert response.success, response.message
    assert client.wait_done(mark, TIMEOUT), node.log()
    (lat,) = client.latencies(mark["latency"])
    assert lat.interrupted
    response = client.stop()
    assert response.success and response.message.startswith("nothing was speaking")


def test_cleanup_then_configure_float32_resampled(node):
    client = node.client
    assert client.change_state("deactivate")
    assert client.change_state("cleanup"), node.log()
    assert client.get_state() == "unconfigured"
    node.set_params(output__format="float32", output__sample_rate=16000, sampling__max_new_tokens=12,
                    text__split_sentences=True)
    info_mark = client.count("audio_info")
    assert client.change_state("configure"), node.log()
    assert client.change_state("activate"), node.log()
    assert client.wait_for(lambda: client.count("audio_info") > info_mark, TIMEOUT)
    info = client.audio_info[-1].msg
    assert (info.sample_rate, info.sample_format, info.bitrate) == (16000, "F32LE", 16000 * 32)
    _, groups, latencies = node.speak("Resampled output for an older speaker.")
    (received,) = groups.values()
    msgs = [r.msg for r in received]
    frames = sum(m.frame_count for m in msgs)
    total_samples = sum(len(m.audio.data) for m in msgs) // 4
    assert frames == latencies[0].frames > 0
    assert total_samples == -(-frames * 1920 * 2 // 3)  # ceil(frames * 1920 * 16000 / 24000)
    assert all((m.info.sample_rate, m.info.sample_format) == (16000, "F32LE") for m in msgs)


def test_sigint_exits_cleanly(node):
    assert node.state() == "active"
    rc = node.proc.stop(timeout=30.0)
    assert rc == 0, node.log()
