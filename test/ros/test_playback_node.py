"""The node with playback.enabled, as a real process, against a real sound server (a private PulseAudio with a
null sink, recorded with parec: qwen3_tts_ros/testing/sound_server.py); what it publishes is compared with
what came out.

Bounds (as test_playback_player.py): samples exact (the sink runs at the node's rate and format with one
client at unity volume: PulseAudio neither resamples nor scales); times within TIME_BOUND_S: one device
period (playback.latency_s) for the device clock and the stop, plus the recorder's two blocks. The device
latency is 0.2 s here: the tiny model's synthesis shares the 2 cores with PulseAudio, parec and this test,
and a device buffer that runs dry loses samples in ALSA's recovery (what is under test is the node, not the
device's margin). Messages arrive after what they report (DDS), so their arrival is bounded from below only:
tts/speaking false and a wait_for_playback result must never come before the sound has ended.
No skip: without the sound server (installed by scripts/setup_env.sh) these tests fail.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from qwen3_tts_ros.testing.sound_server import MonitorRecorder

LATENCY_S = 0.2
TIME_BOUND_S = LATENCY_S + 2 * MonitorRecorder.LATENCY_MS / 1e3
RATE = 24000


def published(client, since: int, utterance_ids) -> np.ndarray:
    groups = client.utterances(since)
    return np.concatenate(
        [np.frombuffer(bytes(r.msg.audio.data), "<i2") for u in utterance_ids for r in groups[u]]
    )


def trimmed(x: np.ndarray) -> np.ndarray:
    nz = np.flatnonzero(x)
    return x[nz[0] : nz[-1] + 1]


def playback_status(client) -> dict[str, str]:
    with client._lock:
        statuses = [
            s for r in client.diagnostics[-20:] for s in r.msg.status if s.name.endswith(": playback")
        ]
    assert statuses, "no playback status on /diagnostics"
    return {kv.key: kv.value for kv in statuses[-1].values}


def test_playback_node(
    sound_server, node_session, base_overrides, tiny_custom_voice_checkpoint, long_text, tmp_path
):
    overrides = dict(
        base_overrides,
        model=str(tiny_custom_voice_checkpoint),
        **{
            "playback.enabled": True,
            "playback.device": "no-such-speaker",
            "playback.latency_s": LATENCY_S,
            # Longer than any utterance here: each starts once its final chunk is in, so no underrun can
            # put silence inside it, whatever the load (underruns: test_playback_player.py).
            "playback.start_buffer_s": 10.0,
            "playback.envelope_rate_hz": 50.0,
        },
    )
    with node_session(tmp_path, overrides, activate=False, env=sound_server.env) as node:
        client = node.client
        # A device that is not there: configure fails naming it and listing the devices; the node stays
        # usable.
        assert not client.change_state("configure")
        assert node.state() == "unconfigured"
        log = node.log(20000)
        assert "audio device 'no-such-speaker'" in log and "'pulse'" in log, log
        node.set_params(playback__device="pulse", sampling__max_new_tokens=10)
        assert client.change_state("configure"), node.log()
        assert client.change_state("activate"), node.log()
        assert client.wait_for_subscriber(60)

        # --- one goal with wait_for_playback: what is played, and when the node says it ended
        recorder = sound_server.recorder()
        mark = client.mark()
        goal = client.say_and_wait("Hello there, robot.", wait_for_playback=True)
        assert goal.status == "succeeded", goal.result
        assert client.wait_done(mark, 60), node.log()
        recorder.wait_until(goal.result_at + TIME_BOUND_S)
        rec = recorder.samples()
        sent = trimmed(published(client, mark["chunks"], goal.result.utterance_ids))
        start = int(np.flatnonzero(rec)[0])
        end = start + len(sent)
        assert np.array_equal(rec[start:end], sent)  # every sample, in order, no gap, nothing repeated
        assert not rec[end:].any()
        with client._lock:
            speaking = [(r.msg.data, r.at) for r in client.speaking[mark["speaking"] :]]
            latency = client.latency[-1].msg
            feedback = [r.msg for r in goal.feedback]
        assert [value for value, _ in speaking] == [True, False]
        assert speaking[0][1] >= recorder.time_of(start) - TIME_BOUND_S
        assert speaking[1][1] >= recorder.time_of(end) - TIME_BOUND_S  # never before the sound ended
        assert goal.result_at >= recorder.time_of(end) - TIME_BOUND_S
        # Feedback after the sound: the seconds played (all of it; one sample of rounding in float32).
        assert feedback[-1].played_seconds == pytest.approx(goal.result.audio_seconds, abs=1 / RATE)
        assert latency.first_text_to_first_sound_ms >= latency.end_to_end_first_audio_ms > 0
        status = playback_status(client)
        assert status["device"] == "pulse" and status["utterances_played"] == "1"

        # --- a stop while the sound plays: silent within one device period of the stop's answer
        node.set_params(sampling__max_new_tokens=20)  # long_text: no EOS before 30 frames
        mark = client.mark()
        client.say(long_text)
        assert client.wait_for(lambda: client.count("speaking") > mark["speaking"], 120), node.log()
        with client._lock:
            sound_at = client.speaking[-1].at
        recorder.wait_until(sound_at + 0.5)
        response = client.stop()
        stopped_at = time.monotonic()
        assert response.success
        assert client.wait_for(
            lambda: [r.msg.data for r in client.speaking[mark["speaking"] :]] == [True, False], 60
        )
        recorder.wait_until(stopped_at + 0.5)
        rec = recorder.samples()
        last = int(np.flatnonzero(rec)[-1]) + 1
        assert recorder.time_of(last) <= stopped_at + TIME_BOUND_S
        assert recorder.time_of(last) >= sound_at - TIME_BOUND_S  # it did sound before the stop

        # --- a wait_for_playback goal cancelled while its sound plays: CANCELED, and silent at once
        mark = client.mark()
        goal = client.send_goal(long_text, wait_for_playback=True)
        assert client.wait_for(lambda: client.count("speaking") > mark["speaking"], 120), node.log()
        with client._lock:
            sound_at = client.speaking[-1].at
        recorder.wait_until(sound_at + 0.3)
        cancel_sent = time.monotonic()
        client.cancel_goal(goal)
        assert client.wait_for(lambda: goal.finished, 60)
        assert goal.status == "canceled" and goal.result.ended_by == "cancelled", goal.result
        recorder.wait_until(goal.result_at + 0.5)
        rec = recorder.samples()
        last = int(np.flatnonzero(rec)[-1]) + 1
        assert cancel_sent - TIME_BOUND_S <= recorder.time_of(last) <= goal.result_at + TIME_BOUND_S
        recorder.stop()

        # --- a flood of texts on a loaded machine: everything played once, in order
        recorder = sound_server.recorder()
        node.set_params(sampling__max_new_tokens=5)
        burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
        ]
        try:
            mark = client.mark()
            texts = [f"Number {k}, here it comes." for k in range(4)]
            for text in texts:
                client.say(text)
            assert client.wait_for(lambda: len(client.latencies(mark["latency"])) == len(texts), 300)
            assert client.wait_done(mark, 300), node.log()
        finally:
            for b in burners:
                b.kill()
                b.wait()
        with client._lock:
            end_at = client.speaking[-1].at
        recorder.wait_until(end_at + TIME_BOUND_S)
        rec = recorder.stop()
        ids = sorted(client.utterances(mark["chunks"]))
        assert len(ids) == len(texts)
        sent = published(client, mark["chunks"], ids)
        assert np.array_equal(rec[rec != 0], sent[sent != 0])  # nothing lost, repeated or reordered
        status = playback_status(client)
        assert status["underruns"] == "0"  # none can happen with this start buffer (see overrides)
