"""A real sound server for the playback tests: a private PulseAudio daemon whose only sink is a null sink, and
a recorder of that sink's monitor (what would come out of the speaker), through PulseAudio's own `parec`.

The daemon runs as the calling user (root on CI works too: it warns, but a per-user daemon with its own
runtime directory runs as root), with an anonymous native socket in a temporary directory; PULSE_SERVER
points every client of this process and its children (node processes) at it, and PortAudio reaches it
through ALSA's `pulse` device (alsa-plugins). The sink runs at the node's rate, mono S16LE, so what plays
reaches the monitor without resampling.

    python -m qwen3_tts_ros.testing.sound_server   # start one by hand; prints the PULSE_SERVER to export
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S

SINK = "qwen3_tts_test_sink"
RATE = 24000
NEEDED = ("pulseaudio", "pactl", "parec")


class SoundServer:
    """`start()` a PulseAudio daemon with a null sink; `env` is what its clients need; `stop()` ends it."""

    def __init__(self, rate: int = RATE):
        missing = [tool for tool in NEEDED if shutil.which(tool) is None]
        if missing:  # the test set-up (scripts/setup_env.sh) installs them: a failure, never a skip
            raise RuntimeError(f"the sound server needs {missing} (apt: pulseaudio pulseaudio-utils)")
        self.rate = rate
        self.dir = tempfile.mkdtemp(prefix="q3pulse-")
        self.socket = os.path.join(self.dir, "native")
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": self.dir,
            "PULSE_STATE_PATH": self.dir,
            "PULSE_SINK": SINK,
        }
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--system=false",
            "--disallow-module-loading=no", "--log-target=stderr", "--log-level=error",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            f"--load=module-null-sink sink_name={SINK} rate={self.rate} channels=1 format=s16le",
        ]  # fmt: skip
        self._log = open(os.path.join(self.dir, "pulseaudio.log"), "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, HOME=self.dir, XDG_CONFIG_HOME=self.dir, **self.env)
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while self.pactl("info").returncode != 0:  # answers once the socket is up
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pulseaudio did not start: {self.log()}")
            time.sleep(0.05)

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args], env=dict(os.environ, **self.env), capture_output=True, text=True
        )

    def log(self) -> str:
        with open(os.path.join(self.dir, "pulseaudio.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def recorder(self) -> MonitorRecorder:
        return MonitorRecorder(self)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5.0)
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class MonitorRecorder:
    """Records the null sink's monitor (S16LE mono at the sink's rate) with `parec`, and when each sample was
    captured. parec delivers blocks of LATENCY_MS; a sample is captured no later than the block holding it
    arrives, so the capture clock is `base + index / rate` with base the earliest (arrival - samples so
    far / rate) over all blocks: later than the true capture time by at most the monitor's block latency
    plus the quickest delivery seen."""

    LATENCY_MS = 10
    SETTLE_S = 0.5

    def __init__(self, server: SoundServer):
        self.rate = server.rate
        self._proc = subprocess.Popen(
            ["parec", "-d", f"{SINK}.monitor", "--raw", "--format=s16le", f"--rate={server.rate}",
             "--channels=1", f"--latency-msec={self.LATENCY_MS}"],
            stdout=subprocess.PIPE, env=dict(os.environ, **server.env),
        )  # fmt: skip
        self._cond = threading.Condition()
        self._data = bytearray()
        self._base = float("inf")
        self._thread = threading.Thread(target=self._read, name="monitor_recorder", daemon=True)
        self._thread.start()
        # parec needs a moment (over a second on a loaded machine) before audio flows, and in trials under
        # load the first audio played within its first few hundred milliseconds was sometimes short of a few
        # ms at its start (never later): the recording counts from SETTLE_S of delivered audio on.
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self._data) >= 2 * self.SETTLE_S * self.rate, EVENT_TIMEOUT_S
            ):
                raise RuntimeError(f"parec delivered {len(self._data)} bytes")

    def _read(self) -> None:
        fd = self._proc.stdout.fileno()
        while True:
            block = os.read(fd, 65536)
            now = time.monotonic()
            if not block:
                return
            with self._cond:
                self._data += block
                self._base = min(self._base, now - (len(self._data) // 2) / self.rate)
                self._cond.notify_all()

    def samples(self) -> np.ndarray:
        with self._cond:
            return np.frombuffer(bytes(self._data[: len(self._data) // 2 * 2]), dtype="<i2").copy()

    def time_of(self, index: int) -> float:
        """time.monotonic() when sample `index` was captured (see the class doc for the bound)."""
        with self._cond:
            return self._base + index / self.rate

    def index_at(self, when: float) -> int:
        with self._cond:
            return round((when - self._base) * self.rate)

    def wait_until(self, when: float) -> None:
        """Wait until the recording holds what was captured up to monotonic time `when`."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._base + (len(self._data) // 2) / self.rate >= when, EVENT_TIMEOUT_S
            ):
                raise RuntimeError("the recording stopped growing")

    def stop(self) -> np.ndarray:
        self._proc.terminate()
        self._proc.wait(10.0)
        self._thread.join(5.0)
        return self.samples()


def main() -> None:
    server = SoundServer()
    server.start()
    print(f"export PULSE_SERVER={server.env['PULSE_SERVER']}   # Ctrl-C stops the server", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
