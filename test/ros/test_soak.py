"""Soak: a real node process under random mixed traffic (texts of every kind, bursts, stop, policy changes,
deactivate / activate, cleanup / configure) for SOAK_S seconds, then the invariants of the other suites
checked over the whole run: every utterance complete (sequence, frames, one final chunk) with its latency
message, every text received and accounted for, the node alive and responsive, its memory bounded, no
traceback in its log.

CI runs it for 20 s. On demand: QWEN3_TTS_ROS_SOAK_S=3600 python -m pytest -s test/ros/test_soak.py
(or QWEN3_TTS_ROS_LONG=1, which makes it 1800 s; see docs/RELIABILITY.md).
"""
import os
import random
import time

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

pytestmark = [pytest.mark.ros, pytest.mark.long]  # long: QWEN3_TTS_ROS_LONG=1 makes it a long run

LONG = os.environ.get("QWEN3_TTS_ROS_LONG") == "1"
SOAK_S = float(os.environ.get("QWEN3_TTS_ROS_SOAK_S", 1800 if LONG else 20))
RSS_GROWTH_LIMIT_MB = 64.0
TEXTS = [
    "Turning left at the next corner.",
    "The battery is at forty percent; I will return to the charging station soon.",
    "Hello! How can I help you today? I can fetch things, open doors and answer questions.",
    "...", "\U0001F916\U0001F44D", "Mixed \u4f60\u597d \u041f\u0440\u0438\u0432\u0435\u0442 text.",
    "   ", "/tmp/not_a_path.wav", "a" * 300, "Stop.",
]


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_custom_voice_checkpoint, node_session, base_overrides):
    overrides = dict(base_overrides, model=str(tiny_custom_voice_checkpoint),
                     **{"sampling.max_new_tokens": 10, "sampling.do_sample": True,
                        "sampling.subtalker_dosample": True, "diagnostics.period_s": 0.5})
    log_dir = tmp_path_factory.mktemp("soak_node")
    with node_session(log_dir, overrides, env={"OMP_NUM_THREADS": "1"}, activate=False) as running:
        yield running


@pytest.mark.timeout(SOAK_S + 600)  # pytest.ini's 600 s would end a long soak
def test_random_mixed_traffic(node):
    client = node.client
    rng = random.Random(int(os.environ.get("QWEN3_TTS_ROS_SOAK_SEED", "0")))
    assert client.change_state("configure") and client.change_state("activate"), node.log()
    assert client.wait_for_subscriber(TIMEOUT)
    mark = client.mark()
    received_before = int(node.status()["texts_received"])
    sent = 0
    actions = {"stop": 0, "policy": 0, "reactivate": 0, "reconfigure": 0, "burst": 0}
    rss = [(0.0, node.rss_mb())]
    t0 = time.monotonic()
    while time.monotonic() - t0 < SOAK_S:
        roll = rng.random()
        if roll < 0.70:
            client.say(rng.choice(TEXTS))
            sent += 1
        elif roll < 0.78:
            for _ in range(rng.randint(5, 40)):
                client.say(rng.choice(TEXTS))
                sent += 1
            actions["burst"] += 1
        elif roll < 0.86:
            assert client.stop().success
            actions["stop"] += 1
        elif roll < 0.93:
            node.set_params(queue__policy=rng.choice(["queue", "interrupt"]),
                            queue__max_size=rng.randint(1, 16))
            actions["policy"] += 1
        elif roll < 0.98:
            assert client.change_state("deactivate") and client.change_state("activate"), node.log()
            actions["reactivate"] += 1
        else:
            for transition in ("deactivate", "cleanup", "configure", "activate"):
                assert client.change_state(transition), f"{transition}\n{node.log()}"
            actions["reconfigure"] += 1
        time.sleep(rng.uniform(0.0, 0.4))
        if time.monotonic() - rss[-1][0] - t0 > 10.0:
            rss.append((time.monotonic() - t0, node.rss_mb()))
    node.set_params(queue__policy="queue")
    last = client.mark()
    final = "The soak is over."
    client.say(final)
    sent += 1

    def final_spoken():  # the node may still be speaking queued texts at the mark, so no new "speaking true"
        spoken = [m.text_length for m in client.latencies(last["latency"])]
        return len(final) in spoken and client.speaking[-1].msg.data is False

    assert client.wait_for(final_spoken, TIMEOUT), f"the last text was not spoken\n{node.log()}"
    rss.append((time.monotonic() - t0, node.rss_mb()))

    latencies = client.latencies(mark["latency"])
    groups = client.utterances(mark["chunks"])
    status = node.status()
    counters = {k: status[k] for k in ("texts_received", "empty", "rejected", "dropped", "interrupted")}
    print(f"soak {SOAK_S:.0f} s: {sent} texts sent, {len(latencies)} utterances, actions {actions}, "
          f"counters {counters}, node RSS MB {[(round(t), round(m, 1)) for t, m in rss]}")
    assert client.stream_problems(mark["chunks"]) == []
    assert set(groups) == {m.utterance_id for m in latencies}
    assert all(m.error in ("", "stopped") for m in latencies), [m.error for m in latencies if m.error]
    assert int(status["texts_received"]) - received_before == sent, "every text reached the node"
    assert latencies[-1].text_length == len("The soak is over.") and not latencies[-1].interrupted
    warm = rss[min(1, len(rss) - 1)][1]
    assert max(m for _, m in rss) - warm < RSS_GROWTH_LIMIT_MB, rss
    log = node.log(10**7)
    assert "Traceback" not in log and "callback failed" not in log, log[-3000:]
