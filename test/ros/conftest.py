"""Fixtures for the node integration tests: a tiny checkpoint, a real node process, a real client.

Isolation: each test session picks its own ROS_DOMAIN_ID (unless one is set) and each node process its own
namespace, so concurrent test runs on one machine never see each other's topics or /diagnostics.
"""
import contextlib
import os
import pathlib
import uuid

import pytest

from qwen3_tts_ros.testing.waits import EVENT_TIMEOUT_S as TIMEOUT

os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))

# Every override the tests' node processes share: the tiny checkpoint on CPU, greedy decoding (deterministic,
# comparable with the engine's own output), no warm-up (tests measure their own), fast diagnostics.
BASE_OVERRIDES = {
    "device": "cpu",
    "dtype": "float32",
    "warmup.text": "",
    "sampling.do_sample": False,
    "sampling.subtalker_dosample": False,
    "diagnostics.period_s": 0.2,
}
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_custom_voice_checkpoint(tmp_path_factory):
    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ros_tiny_custom_voice"), "custom_voice", seed=1)


LONG_CHECK_FRAMES = 30


@pytest.fixture(scope="session")
def long_text(tiny_custom_voice_checkpoint):
    """A text the greedy tiny model speaks for more than LONG_CHECK_FRAMES frames (EOS does not end it
    first), so a stop/deactivate/interrupt sent after its first chunk lands mid-utterance."""
    import torch

    from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
    from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest

    engine = Qwen3TTSCudaGraphs.from_pretrained(str(tiny_custom_voice_checkpoint), device="cpu",
                                                dtype=torch.float32, use_cuda_graphs=False)
    try:
        speaker = engine.get_supported_speakers()[0]
        candidates = ("One two three four five six seven eight nine ten eleven twelve.",
                      "Navigation goal reached, waiting for the next instruction please.")
        for text in candidates:
            request = SpeechRequest(text=text, mode="custom_voice", speaker=speaker, sampling=SamplingParams(
                do_sample=False, subtalker_dosample=False, max_new_tokens=LONG_CHECK_FRAMES))
            stream = engine.stream(request, first_chunk_frames=1, chunk_frames=LONG_CHECK_FRAMES)
            for _ in stream:
                pass
            if stream.stats.stopped_by == "max_new_tokens":
                return text
    finally:
        engine.close()
    pytest.skip("no candidate text runs long enough on this tiny checkpoint")


@pytest.fixture(scope="module")
def engine(tiny_custom_voice_checkpoint):
    """The tiny custom_voice engine in this process, as the test nodes load it (CPU, float32, the node's
    max_seq_len), to compute what a node should publish."""
    import torch

    from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs

    eng = Qwen3TTSCudaGraphs.from_pretrained(str(tiny_custom_voice_checkpoint), device="cpu",
                                             dtype=torch.float32, max_seq_len=2048, use_cuda_graphs=True,
                                             allow_download=False)
    eng.capture()
    yield eng
    eng.close()


class RunningNode:
    """A node process plus a client bound to its namespace; `log()` is the node's output so far."""

    def __init__(self, tmp_dir: pathlib.Path, overrides: dict, params_file: str | None = None,
                 env: dict | None = None):
        from qwen3_tts_ros.client import NodeProcess, TtsClient

        self.namespace = f"/t{uuid.uuid4().hex[:8]}"
        self.proc = NodeProcess(params_file=params_file, overrides=overrides, namespace=self.namespace,
                                log_path=str(tmp_dir / "node.log"), env=env)
        self.client = TtsClient(namespace=self.namespace)

    def log(self, tail: int = 4000) -> str:
        return self.proc.log_text()[-tail:]

    def state(self, timeout: float = TIMEOUT) -> str:
        """Lifecycle state once the services answer (a fresh process needs a few seconds)."""
        return self.client.get_state(timeout=timeout)

    def set_params(self, **values) -> None:
        """set_params(sampling__max_new_tokens=20): '__' stands for '.' in parameter names."""
        results = self.client.set_params({k.replace("__", "."): v for k, v in values.items()})
        assert all(ok for ok, _ in results), results

    def speak(self, text: str, timeout: float = TIMEOUT):
        """Send one text, wait until the node is idle again; (mark, chunks by utterance id, latencies)."""
        client = self.client
        mark = client.mark()
        client.say(text)
        assert client.wait_done(mark, timeout), f"utterance did not complete\n{self.log()}"
        return mark, client.utterances(mark["chunks"]), client.latencies(mark["latency"])

    def status(self, after: int = -1, timeout: float = TIMEOUT) -> dict:
        """Key/values of the newest '<node>: synthesis' diagnostic status (see TtsClient.status)."""
        return self.client.status(after, timeout)

    def rss_mb(self) -> float:
        """Resident memory of the node process now."""
        from qwen3_tts_ros.testing.process_memory import rss_bytes

        return rss_bytes(self.proc.proc.pid) / 2**20

    def close(self) -> int:
        self.client.close()
        return self.proc.stop()


@pytest.fixture(scope="session")
def base_overrides():
    return dict(BASE_OVERRIDES)


@pytest.fixture(scope="session")
def node_factory():
    """start(log_dir, overrides, params_file=None, env=None) -> RunningNode (the caller closes it); env: extra
    environment variables of the node process."""

    def start(log_dir: pathlib.Path, overrides: dict, params_file: str | None = None,
              env: dict | None = None) -> RunningNode:
        log_dir.mkdir(parents=True, exist_ok=True)
        return RunningNode(log_dir, overrides, params_file, env)

    return start


@pytest.fixture(scope="session")
def node_session(node_factory):
    """with node_session(log_dir, overrides, activate=True, env=None) as node: a node process started
    unconfigured, brought to active (configure, activate, a subscriber on tts/text matched) unless
    activate=False, closed afterwards with its exit status checked (0: a clean shutdown)."""

    @contextlib.contextmanager
    def session(log_dir: pathlib.Path, overrides: dict, *, activate: bool = True, env: dict | None = None):
        running = node_factory(log_dir, overrides, env=env)
        try:
            assert running.state() == "unconfigured"
            if activate:
                assert running.client.change_state("configure"), running.log()
                assert running.client.change_state("activate"), running.log()
                assert running.client.wait_for_subscriber(TIMEOUT)
            yield running
        finally:
            rc = running.close()
            assert rc == 0, f"node exited with {rc}\n{running.log()}"

    return session
