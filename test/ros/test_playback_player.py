"""The Player (node/playback.py) against a real sound server: a private PulseAudio with a null sink, whose
monitor is recorded with parec (qwen3_tts_ros/testing/sound_server.py). No ROS here; the node's use of it is
test_playback_node.py.

Bounds. Samples: the sink runs at the stream's rate and format (24 kHz mono S16LE) with one client at unity
volume, so PulseAudio neither resamples nor scales: the recording holds exactly the samples written (0 LSB).
Time: the recorder dates a sample no later than the parec block (10 ms) holding it arrives, so its clock is
late by at most that block plus the quickest delivery; the device clock (PortAudio's DAC time) is
PulseAudio's latency estimate, good to one device period. Hence TIME_BOUND_S below. A stop must be silent
one device period (the stream's latency) after the flush returned, plus the recorder's bound.
No skip: without the sound server (installed by scripts/setup_env.sh) these tests fail.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from qwen3_tts_ros.node.playback import PlaybackError, Player, PlayerConfig
from qwen3_tts_ros.testing.sound_server import MonitorRecorder
from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

RATE = 24000
LATENCY_S = 0.05  # the device latency asked of PortAudio: one device period
TIME_BOUND_S = LATENCY_S + 2 * MonitorRecorder.LATENCY_MS / 1e3
LOADED_LATENCY_S = 0.25


@pytest.fixture(scope="module")
def server(sound_server):
    """The sound server, with this process's PortAudio pointed at it (the ALSA 'pulse' device connects
    through PULSE_SERVER)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in sound_server.env.items():
            patch.setenv(key, value)
        yield sound_server


class Events:
    """A PlayerListener that records what it is told."""

    def __init__(self):
        self.cond = threading.Condition()
        self.started: dict[int, float] = {}
        self.ended: dict[int, tuple[float, float, bool]] = {}
        self.underruns: list[tuple[int, int]] = []
        self.levels: list[float] = []

    def sound_started(self, utterance_id, at):
        with self.cond:
            self.started[utterance_id] = at
            self.cond.notify_all()

    def sound_ended(self, utterance_id, at, played_s, flushed):
        with self.cond:
            assert utterance_id not in self.ended, f"utterance {utterance_id} ended twice"
            self.ended[utterance_id] = (at, played_s, flushed)
            self.cond.notify_all()

    def envelope(self, level, at):
        self.levels.append(level)

    def underrun(self, utterance_id, count):
        self.underruns.append((utterance_id, count))

    def wait(self, predicate):
        with self.cond:
            assert self.cond.wait_for(predicate, EVENT_TIMEOUT_S), "the player did not report it"


def noise(rng, seconds: float) -> np.ndarray:
    """Random int16 audio with no zero sample, so silence in a recording is never part of it."""
    n = round(seconds * RATE)
    x = rng.integers(1, 8000, n) * rng.choice([-1, 1], n)
    return x.astype("<i2")


def chunks(x: np.ndarray, size: int = 1920):
    for k in range(0, len(x), size):
        yield x[k : k + size], k + size >= len(x)


def sound_span(rec: np.ndarray) -> tuple[int, int]:
    nz = np.flatnonzero(rec)
    assert len(nz), "nothing was recorded"
    return int(nz[0]), int(nz[-1]) + 1


def test_playback_plays_every_sample_in_order_and_reports_device_times(server):
    recorder = server.recorder()
    events = Events()
    player = Player(
        PlayerConfig(device="pulse", sample_rate=RATE, latency_s=LATENCY_S, envelope_rate_hz=50), events
    )
    try:
        rng = np.random.default_rng(1)
        utterances = [noise(rng, 0.7), noise(rng, 0.5)]
        for u, x in enumerate(utterances):
            for part, final in chunks(x):
                assert player.write(u, part.tobytes(), final)
        events.wait(lambda: len(events.ended) == 2)
        recorder.wait_until(events.ended[1][0] + 0.2)
    finally:
        player.close()
        rec = recorder.stop()
    start, end = sound_span(rec)
    # In order, back to back, nothing lost, repeated or changed (0 LSB: see the module doc).
    assert np.array_equal(rec[start:end], np.concatenate(utterances))
    assert events.ended[0][1:] == (0.7, False) and events.ended[1][1:] == (0.5, False)
    # The device clock against the recording.
    assert abs(events.started[0] - recorder.time_of(start)) <= TIME_BOUND_S
    assert abs(events.ended[1][0] - recorder.time_of(end)) <= TIME_BOUND_S
    assert abs(events.started[1] - recorder.time_of(start + len(utterances[0]))) <= TIME_BOUND_S
    # The envelope: one level per 20 ms played, the RMS of the noise (|x| uniform in [1, 8000): 8000 / sqrt(3)
    # of full scale); rel 0.1 is five standard deviations of one 480-sample window's RMS (2 %).
    assert len(events.levels) >= int(1.2 * 50)
    assert max(events.levels) == pytest.approx(8000 / 3**0.5 / 32768, rel=0.1)
    assert player.stats().underruns == 0


def test_playback_flush_silences_within_one_device_period_and_plays_on(server):
    recorder = server.recorder()
    events = Events()
    player = Player(PlayerConfig(device="pulse", sample_rate=RATE, latency_s=LATENCY_S), events)
    rng = np.random.default_rng(2)
    try:
        long = noise(rng, 5.0)
        for part, final in chunks(long):
            player.write(0, part.tobytes(), final)
        events.wait(lambda: 0 in events.started)
        recorder.wait_until(events.started[0] + 0.5)
        assert player.flush() == [0]
        flushed_at = time.monotonic()
        events.wait(lambda: 0 in events.ended)
        assert not player.write(0, long[:100].tobytes(), True)  # a flushed utterance stays silent
        after = noise(rng, 0.3)
        for part, final in chunks(after):
            player.write(1, part.tobytes(), final)
        events.wait(lambda: 1 in events.ended)
        recorder.wait_until(events.ended[1][0] + 0.2)
    finally:
        player.close()
        rec = recorder.stop()
    _, played_s, flushed = events.ended[0]
    assert flushed and 0.4 < played_s < 5.0
    first_start, _ = sound_span(rec)
    # What sounded of the first utterance is its beginning: up to the first sample that differs from it.
    head = rec[first_start : first_start + len(long)]
    first_end = first_start + int(np.flatnonzero(head != long[: len(head)])[0])
    assert recorder.time_of(first_end) <= flushed_at + TIME_BOUND_S  # silent one device period after
    # Then silence until the next utterance, which plays whole.
    rest = rec[first_end:]
    start2 = first_end + int(np.flatnonzero(rest)[0])
    assert recorder.time_of(start2) >= flushed_at - TIME_BOUND_S
    assert np.array_equal(rec[start2 : start2 + len(after)], after)
    assert not rec[start2 + len(after) :].any()


def test_playback_underruns_counted_order_kept_under_load(server):
    """Chunks that come slower than they play, on a machine kept busy: every underrun is counted (the gaps
    forced here at least), told once per utterance, and the sound is the written samples in order, with
    silence only between them. The device latency is LOADED_LATENCY_S here: with every core busy (and
    PulseAudio without real-time priority) a 50 ms device buffer itself ran dry once in a trial, and ALSA's
    recovery from that drops samples the Player had handed over; the device's margin is not what this test
    is about (device underflows are counted apart, in PlayerStats.device_underflows)."""
    recorder = server.recorder()
    events = Events()
    config = PlayerConfig(device="pulse", sample_rate=RATE, latency_s=LOADED_LATENCY_S, start_buffer_s=0.05)
    player = Player(config, events)
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
    ]
    rng = np.random.default_rng(3)
    forced = 0
    try:
        written = []
        for u in range(4):
            x = noise(rng, 0.4)
            written.append(x)
            for k, (part, final) in enumerate(chunks(x, 2400)):
                player.write(u, part.tobytes(), final)
                if k in (1, 3) and not final:  # 0.3 s without audio, after 0.1 s more than the buffer
                    forced += 1
                    events.wait(lambda u=u: u in events.started)
                    time.sleep(0.3)
        events.wait(lambda: len(events.ended) == 4)
        recorder.wait_until(events.ended[3][0] + 0.2)
    finally:
        for b in burners:
            b.kill()
            b.wait()
        player.close()
        rec = recorder.stop()
    stats = player.stats()
    assert stats.underruns >= forced
    told = [u for u, _ in events.underruns]
    assert sorted(told) == sorted(set(told)) and set(told) == {
        0,
        1,
        2,
        3,
    }  # once per utterance, each had gaps
    assert all(count == 1 for _, count in events.underruns)
    sound, expected = rec[rec != 0], np.concatenate(written)
    assert np.array_equal(sound, expected), (
        stats,
        len(sound),
        len(expected),
    )  # nothing lost, repeated, reordered
    assert [events.ended[u][1:] for u in range(4)] == [(0.4, False)] * 4


def test_playback_bad_device_names_it_and_lists_devices_then_a_good_one_opens(server):
    with pytest.raises(PlaybackError) as error:
        Player(PlayerConfig(device="no-such-speaker"), Events())
    message = str(error.value)
    assert "'no-such-speaker'" in message and "'pulse'" in message and "output devices" in message
    with pytest.raises(PlaybackError, match="99 is not an output device"):
        Player(PlayerConfig(device="99"), Events())
    player = Player(PlayerConfig(device="pulse"), Events())
    try:
        assert player.stats().device == "pulse"
    finally:
        player.close()
