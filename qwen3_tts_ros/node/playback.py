"""Sound out of a local audio device (ROS-free): PortAudio through `sounddevice`, fed utterance by utterance.

`Player` keeps a jitter buffer in front of a callback output stream. An utterance starts sounding once
`start_buffer_s` of audio is buffered (or its final chunk is in: a short utterance never waits for more);
when the buffer runs dry before an utterance's final chunk, that is an underrun: it is counted, the device
gets silence and the utterance waits for the start threshold again (never a stuck or crashed stream).
Every moment it reports (first sample sounding, last sample sounding, the loudness envelope) is taken from
the device clock: PortAudio says when the first sample of each buffer it asks for reaches the DAC, so a
sample's time is that plus its place in the buffer. A `Timeline` thread hands those moments to the
listener when they come, never from PortAudio's callback. `flush()` aborts the stream (PortAudio drops what
the device holds, ALSA's snd_pcm_drop, which PulseAudio's plugin turns into a stream flush) and restarts
it: silence within one device period."""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

DTYPES = {"int16": "int16", "float32": "float32"}
FULL_SCALE = {"int16": 32768.0, "float32": 1.0}
PLAUSIBLE_DAC_DELAY_S = 2.0  # a DAC time further ahead than this is a host API that does not report one


class PlaybackError(Exception):
    """The audio device cannot be used; the message names it and lists the output devices there are."""


def _sounddevice():
    # Imported on first use: it loads libportaudio, which a node without playback never needs.
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise PlaybackError(
            f"playback needs the Python package sounddevice and PortAudio (libportaudio2): {exc}"
        ) from exc
    return sounddevice


def output_devices() -> list[tuple[int, str, str]]:
    """(index, name, host API) of every device with output channels."""
    sd = _sounddevice()
    apis = sd.query_hostapis()
    return [
        (i, d["name"], apis[d["hostapi"]]["name"])
        for i, d in enumerate(sd.query_devices())
        if d["max_output_channels"] > 0
    ]


def describe_devices() -> str:
    listed = output_devices()
    if not listed:
        return "no output devices"
    return "output devices: " + ", ".join(f"{i} '{name}' ({api})" for i, name, api in listed)


def resolve_device(name: str) -> int | None:
    """The PortAudio index of `name`: 'default' or '' (PortAudio's default output, None), an index, an exact
    device name, or a part of exactly one device's name (as sounddevice matches them)."""
    name = name.strip()
    listed = output_devices()
    if name in ("", "default") and not any(n == "default" for _, n, _ in listed):
        if _sounddevice().default.device[1] < 0:
            raise PlaybackError(f"no default audio output device; {describe_devices()}")
        return None
    if name.isdigit():
        if any(i == int(name) for i, _, _ in listed):
            return int(name)
        raise PlaybackError(f"audio device {name} is not an output device; {describe_devices()}")
    exact = [i for i, n, _ in listed if n == name]
    partial = [i for i, n, _ in listed if name.lower() in n.lower()]
    if exact:
        return exact[0]
    if len(partial) == 1:
        return partial[0]
    why = "matches several devices" if partial else "no such output device"
    raise PlaybackError(f"audio device '{name}': {why}; {describe_devices()}")


class Timeline:
    """Calls `fn(*args)` at monotonic time `at`, in time order, on its own thread (`qwen3_tts_playback`)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._order = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qwen3_tts_playback", daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[..., Any], *args) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._order), fn, args))
            self._cond.notify_all()

    def drop(self, keep: Callable[[Callable[..., Any], tuple], bool]) -> None:
        """Forget the calls not yet made for which keep(fn, args) is false."""
        with self._cond:
            self._heap = [e for e in self._heap if keep(e[2], e[3])]
            heapq.heapify(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5.0)

    def _run(self) -> None:
        """Until closed; then the calls already due are made (a flush's endings), the later ones dropped."""
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    return
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one failing listener must not end the thread
                traceback.print_exc()


class PlayerListener(Protocol):
    """Told what the device plays, at the moment it plays it (on the Timeline's thread)."""

    def sound_started(self, utterance_id: int, at: float) -> None:
        """The first sample of the utterance is sounding (time.monotonic() `at`)."""

    def sound_ended(self, utterance_id: int, at: float, played_s: float, flushed: bool) -> None:
        """Its last sample has sounded, or it was flushed (then also for one that never sounded)."""

    def envelope(self, level: float, at: float) -> None:
        """RMS of the window of samples ending now (0..1 of full scale), at the envelope rate."""

    def underrun(self, utterance_id: int, count: int) -> None:
        """The buffer ran dry inside the utterance; `count`: its underruns so far (1 on the first)."""


@dataclasses.dataclass(frozen=True)
class PlayerConfig:
    device: str = "default"
    sample_rate: int = 24000
    pcm_format: str = "int16"  # what write() gets: the node's output.format
    start_buffer_s: float = 0.1
    latency_s: float = 0.05  # the device latency asked of PortAudio (its buffer: one device period or so)
    envelope_rate_hz: float = 50.0


@dataclasses.dataclass
class _Piece:
    utterance_id: int
    samples: np.ndarray
    is_final: bool
    offset: int = 0


@dataclasses.dataclass
class PlayerStats:
    underruns: int = 0  # buffer ran dry inside an utterance
    device_underflows: int = 0  # PortAudio reported an output underflow (the callback was late)
    utterances_played: int = 0
    utterances_flushed: int = 0
    played_seconds: float = 0.0
    buffered_seconds: float = 0.0
    device: str = ""
    device_latency_s: float = 0.0


class Player:
    def __init__(self, config: PlayerConfig, listener: PlayerListener):
        if config.pcm_format not in DTYPES:
            raise ValueError(f"pcm_format must be one of {tuple(DTYPES)}")
        self.config = config
        self._listener = listener
        self._lock = threading.Lock()
        self._queue: collections.deque[_Piece] = collections.deque()
        self._buffered = 0  # samples in the queue not yet handed to the device
        self._finals_queued = 0
        self._playing = False  # False: waiting for the start threshold
        self._started: set[int] = set()  # utterances whose first sample went to the device
        self._played: dict[int, int] = collections.defaultdict(int)  # samples handed to the device
        self._underruns: dict[int, int] = collections.defaultdict(int)
        self._ended: set[int] = set()
        self._tail: dict[int, float] = {}  # when the last sample handed to the device sounds, per utterance
        self._cut_through = -1  # writes of utterances up to this id are ignored (flushed)
        self._stats = PlayerStats()
        self._start_samples = max(1, round(config.start_buffer_s * config.sample_rate))
        self._window = max(1, round(config.sample_rate / config.envelope_rate_hz))
        self._window_sum = 0.0
        self._window_fill = 0
        self._sounding = False  # envelope windows go out while something plays, and one silent after
        self._scale = FULL_SCALE[config.pcm_format]
        self.timeline = Timeline()
        sd = _sounddevice()
        device = resolve_device(config.device)
        try:
            self._stream = sd.OutputStream(
                samplerate=config.sample_rate,
                channels=1,
                dtype=DTYPES[config.pcm_format],
                device=device,
                latency=config.latency_s,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError and ValueError (unsupported rate/format)
            self.timeline.close()
            raise PlaybackError(
                f"cannot open audio device '{config.device}' at {config.sample_rate} Hz "
                f"({type(exc).__name__}: {exc}); {describe_devices()}"
            ) from exc
        name = sd.query_devices(self._stream.device)["name"]
        self._stats.device, self._stats.device_latency_s = name, float(self._stream.latency)

    # ------------------------------------------------------------------ any thread
    def write(self, utterance_id: int, data: bytes | np.ndarray, is_final: bool) -> bool:
        """Queue a chunk of `utterance_id` (PCM in config.pcm_format); False when it was ignored: a chunk of
        a flushed or ended utterance, or an empty one that is not final."""
        samples = (
            np.frombuffer(data, dtype=DTYPES[self.config.pcm_format]) if isinstance(data, bytes) else data
        )
        with self._lock:
            if utterance_id <= self._cut_through or utterance_id in self._ended:
                return False
            if not len(samples) and not is_final:
                return False
            # Utterance ids only go up: no later chunk comes for an earlier one.
            self._ended = {u for u in self._ended if u >= utterance_id}
            self._queue.append(_Piece(utterance_id, samples, is_final))
            self._buffered += len(samples)
            self._finals_queued += int(is_final)
        return True

    def flush(self, through: int | None = None) -> list[int]:
        """Silence now: drop what is buffered of the utterances up to `through` (None: all written so far)
        and what the device holds of them; returns the utterances cut (each gets sound_ended(flushed=True)).
        Audio of a later utterance already in the device (it follows a cut one within one device period)
        is dropped with it."""
        now = time.monotonic()
        with self._lock:
            if through is None:
                through = max([p.utterance_id for p in self._queue] + [self._cut_through, *self._tail])
            restart = any(p.utterance_id <= through for p in self._queue) or any(
                u <= through and end > now for u, end in self._tail.items()
            )
        if restart:
            self._stream.abort()  # drops the device's buffer (waits for a running callback to return)
        now = time.monotonic()
        with self._lock:
            self._cut_through = max(self._cut_through, through)
            cut = {p.utterance_id for p in self._queue if p.utterance_id <= through}
            cut |= {u for u in self._started if u <= through}
            cut |= {u for u, end in self._tail.items() if u <= through and end > now}
            self._queue = collections.deque(p for p in self._queue if p.utterance_id > through)
            self._buffered = sum(len(p.samples) - p.offset for p in self._queue)
            self._finals_queued = sum(p.is_final for p in self._queue)
            if restart:
                self._playing = self._sounding = False
                self._window_sum, self._window_fill = 0.0, 0
            played = {u: self._played.pop(u, 0) / self.config.sample_rate for u in cut}
            self._tail = {u: end for u, end in self._tail.items() if u not in cut}
            self._ended |= cut
            self._started -= cut
            self._stats.utterances_flushed += len(cut)
        if restart:
            # The moments of the dropped audio never come.
            envelope = self._listener.envelope
            self.timeline.drop(lambda fn, args: fn != envelope and args[0] > through)
            self._stream.start()
            self.timeline.at(now, envelope, 0.0, now)
        for u in sorted(cut):
            self.timeline.at(now, self._listener.sound_ended, u, now, played[u], True)
        return sorted(cut)

    def stats(self) -> PlayerStats:
        with self._lock:
            return dataclasses.replace(self._stats, buffered_seconds=self._buffered / self.config.sample_rate)

    def close(self) -> None:
        self.flush()
        self._stream.close(ignore_errors=True)
        self.timeline.close()

    # ------------------------------------------------------------------ PortAudio's callback thread
    def _callback(self, out, frames: int, times, status) -> None:
        now = time.monotonic()
        delay = times.outputBufferDacTime - times.currentTime
        if not 0.0 <= delay < PLAUSIBLE_DAC_DELAY_S:  # some host APIs report 0: use the stream's latency
            delay = self._stream.latency
        first_at = now + delay
        rate = self.config.sample_rate
        out.fill(0)
        buf = out[:, 0]
        events: list[tuple[float, Callable[..., Any], tuple]] = []
        with self._lock:
            if status.output_underflow:
                self._stats.device_underflows += 1
            filled = 0
            while filled < frames:
                if not self._playing:
                    if not self._queue or (self._buffered < self._start_samples and not self._finals_queued):
                        break
                    self._playing = True
                piece = self._queue[0]
                u = piece.utterance_id
                if u not in self._started and len(piece.samples) > piece.offset:
                    self._started.add(u)
                    events.append(
                        (
                            first_at + filled / rate,
                            self._listener.sound_started,
                            (u, first_at + filled / rate),
                        )
                    )
                n = min(frames - filled, len(piece.samples) - piece.offset)
                buf[filled : filled + n] = piece.samples[piece.offset : piece.offset + n]
                piece.offset += n
                filled += n
                self._buffered -= n
                self._played[u] += n
                self._tail[u] = first_at + filled / rate
                if piece.offset < len(piece.samples):
                    continue
                self._queue.popleft()
                if piece.is_final:
                    self._finals_queued -= 1
                    self._ended.add(u)
                    self._started.discard(u)
                    self._stats.utterances_played += 1
                    at = first_at + filled / rate
                    events.append((at, self._listener.sound_ended, (u, at, self._played[u] / rate, False)))
                    self._playing = False  # the next utterance starts at its own threshold
                elif not self._queue:  # dry inside an utterance
                    self._underruns[u] += 1
                    self._stats.underruns += 1
                    self._playing = False
                    if self._underruns[u] == 1:
                        events.append((now, self._listener.underrun, (u, 1)))
            self._stats.played_seconds += filled / rate
            for u in [u for u, end in self._tail.items() if end < now and u in self._ended]:
                del self._tail[u]
                self._played.pop(u, None)
            self._sounding = self._sounding or filled > 0
            events += self._envelope(buf, filled, first_at)
        for at, fn, args in events:
            self.timeline.at(at, fn, *args)

    def _envelope(self, buf: np.ndarray, filled: int, first_at: float) -> list:
        """Envelope windows completed in this buffer (with the lock held)."""
        if not self._sounding:
            return []
        events = []
        rate, start = self.config.sample_rate, 0
        while start < len(buf):
            n = min(self._window - self._window_fill, len(buf) - start)
            part = buf[start : start + n].astype(np.float64) / self._scale
            self._window_sum += float(np.dot(part, part))
            self._window_fill += n
            start += n
            if self._window_fill == self._window:
                at = first_at + start / rate
                level = (self._window_sum / self._window) ** 0.5
                events.append((at, self._listener.envelope, (level, at)))
                self._window_sum, self._window_fill = 0.0, 0
                if start > filled and not self._queue:  # a window of silence after the sound: stop here
                    self._sounding = False
                    break
        return events
