"""Frame-by-frame codec-code generation: our own static-cache decode loop on qwen-tts's weights.

Each 12.5 Hz frame (code predictor, samplers, talker step; reference.py says what it computes) runs on the
device as one call of the chosen frame path's `run` (paths.py: fused Triton kernels, or the reference frame
compiled or eager) over the shared static state (state.py); `frames_per_replay` frames are captured in one
CUDA graph. The text track is copied once per utterance into a static buffer and indexed with the device
step counter, so a replay needs nothing from the host.

Generation ends when c0 is EOS (that frame is not produced), after max_new_tokens - 1 frames (qwen-tts
semantics: the last sampled c0 never gets its residual codebooks), at max_seq_len, or on cancel. The last
two are known on the host in advance (frame count n = min(max_new_tokens - 1, max_seq_len - P + 1)), so
no replay past frame n is launched. EOS is only known on the device, so the host does not wait for it: it
keeps `launch_ahead` replays in flight (ring.py: each followed by a non-blocking copy of its codes into a
pinned host ring and a CUDA event) and waits on the event of the oldest replay only when it hands out that
replay's frames (c0 == EOS is read from the host copy). The first replay is launched alone: a consumer
that decodes the first frame at once (time to first audio) then does not find its decode queued behind
frames it does not need yet. A frame whose c0 is EOS ends generation; the frames launched after it are
never handed out. They only write state that the next utterance sets again (text track, counters,
sampler state) or overwrites before reading it (K/V at positions past the prompt; the talker position is
clamped to the cache). The talker step after the last produced frame runs too and is ignored. When the
iterator ends (stop, cancel, close) the host waits for the replays still in flight, so nothing of one
utterance runs on the device once its iterator is done.

A consumer that works on its own CUDA stream (the engine decodes audio on a side stream, core.py) passes
it as `consumer_stream`: each frame is then cloned out of the ring on that stream once the event of its
own replay completed, instead of on the generating stream, where the clone (and everything the consumer
queues after it) would wait for the replays launched ahead (ring.py).

On CUDA the units are captured once as CUDA graphs over static buffers; every per-call setting is a
device tensor, so the graphs serve all requests. On CPU the very same functions run eagerly (one replay
is one eager call; the host then has nothing to overlap, so launch_ahead defaults to 1 there). Optional
prefill buckets: prefill_graphs.py.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import torch

from ..capture_report import CaptureReport
from ..cuda_capture import capture_graphs
from ..types import SamplingParams, StreamStats
from .options import FrameOptions
from .paths import choose_frame_path
from .prefill import Prefill
from .prefill_graphs import PrefillGraphs
from .ring import Launch, LaunchRing
from .state import FrameState
from .text_rows import MoreText, TextRows


class _Clock:
    """stats.prefill_ms and frame_ms (see FrameGenerator.generate): CUDA events, or host time on CPU."""

    def __init__(self, device: torch.device, stats: StreamStats):
        self.stats, self.on_cuda = stats, device.type == "cuda"
        self.start = time.perf_counter()
        self.prefill_start = self._event()
        self.prefill_done = self.previous_done = None

    def _event(self) -> torch.cuda.Event | None:
        if not self.on_cuda:
            return None
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def prefill_launched(self) -> None:
        self.prefill_done = self.previous_done = self._event()
        self.stats.prefill_ms = 0.0 if self.on_cuda else (time.perf_counter() - self.start) * 1000

    def frame_ms(self, launch: Launch, per_replay: int) -> float:
        """Per frame of `launch`, which has completed."""
        if launch.done is None:
            return launch.wall_ms / per_replay
        if self.previous_done is self.prefill_done:
            self.stats.prefill_ms = self.prefill_start.elapsed_time(self.prefill_done)
        ms = self.previous_done.elapsed_time(launch.done) / per_replay
        self.previous_done = launch.done
        return ms

    def finish(self, in_flight: deque[Launch]) -> None:
        """Wait until nothing of this utterance runs on the device any more."""
        if self.on_cuda and self.prefill_done is not None:
            (in_flight[-1].done if in_flight else self.prefill_done).synchronize()
            self.stats.prefill_ms = self.prefill_start.elapsed_time(self.prefill_done)


def _stop_before(t: int, cancel: threading.Event | None, budget: Callable[[], int] | None) -> str:
    """Why frame t is not produced, known on the host ("" if nothing says so)."""
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if budget is not None and t >= budget():
        return "runaway"
    return ""


class _Launches:
    """The replays of one utterance launched so far, and those in flight (not yet handed out)."""

    def __init__(self, generator: FrameGenerator, text: TextRows, n_replays: int):
        self.generator, self.text, self.n_replays = generator, text, n_replays
        self.in_flight: deque[Launch] = deque()
        self.launched = 0

    def launch_next(self) -> None:
        g = self.generator
        run = g._frame_graph.replay if g._frame_graph is not None else g._replay
        self.in_flight.append(g.ring.launch(self.launched, run))
        self.launched += 1

    def fill(self, replay: int) -> None:
        """Launch what the text allows, up to launch_ahead replays from `replay` on (the first one alone: a
        consumer that decodes frame 0 at once then does not wait behind frames it does not need yet)."""
        ahead = 1 if replay == 0 else self.generator.launch_ahead
        self.text.take(block=False)
        while self.launched < min(replay + ahead, self.n_replays) and self.text.covers(self.launched):
            self.launch_next()

    def oldest(self) -> Launch:
        return self.in_flight.popleft()


class FrameGenerator:
    def __init__(self, model, options: FrameOptions | None = None):
        """model: qwen-tts `Qwen3TTSForConditionalGeneration` (device and dtype are taken from it).

        options: FrameOptions() when None. The frame path is chosen here (paths.choose_frame_path;
        EngineConfigError for a named path that cannot run on the model's device); `path_reason` says why.
        """
        self.options = options = options if options is not None else FrameOptions()
        device = model.talker.codec_head.weight.device
        path, self.path_reason = choose_frame_path(device, options.path)
        self.state = FrameState(model, options)
        self.path = path(self.state)
        self.device, self.dtype = self.state.device, self.state.dtype
        self.max_seq_len = options.max_seq_len
        self.frames_per_replay = options.frames_per_replay
        self.use_cuda_graphs = options.use_cuda_graphs and device.type == "cuda"
        self.launch_ahead = options.replays_in_flight(self.use_cuda_graphs)
        self.ring = LaunchRing(self.state.frames, self.launch_ahead)
        self.prefills = PrefillGraphs(self.state, options.prefill_buckets)
        self._frame_graph: torch.cuda.CUDAGraph | None = None
        self.graphs_captured = 0  # the frame graph and the bucket graphs, each time they are captured
        self._busy = threading.Lock()

    def _replay(self) -> None:
        """One replay's frames (captured as one CUDA graph)."""
        for index in range(self.frames_per_replay):
            self.path.run(index)

    def capture(self) -> float:
        """Capture the CUDA graphs (once, on the calling thread); returns seconds spent. No-op on CPU."""
        if not self.use_cuda_graphs or self._frame_graph is not None:
            return 0.0
        start = time.perf_counter()
        # The warm-up runs draw sampling noise; put the RNG back afterwards, so that a seeded generation
        # gives the same frames whether or not it is the one that triggered the capture.
        rng_state = torch.cuda.get_rng_state(self.device)
        with torch.no_grad():
            graphs = capture_graphs(self.device, [self._replay, *self.prefills.units()])
        torch.cuda.set_rng_state(rng_state, self.device)
        self._frame_graph = graphs[0]
        self.prefills.keep(graphs[1:])
        self.graphs_captured += len(graphs)
        return time.perf_counter() - start

    def capture_report(self, codec=None) -> CaptureReport:
        """What this generator (and `codec`, a CausalCodecDecoder) captured and replayed
        (capture_report.py)."""
        return CaptureReport(
            frame_path=self.path.name,
            frame_path_reason=self.path_reason,
            frame_path_description=self.path.describe(),
            frame_graph=self._frame_graph is not None,
            prefill_bucket_graphs=self.prefills.captured(),
            prefill_bucket_replays=self.prefills.replays(),
            uncaptured_prefills=self.prefills.uncaptured,
            uncaptured_prefill_lengths=tuple(sorted(self.prefills.uncaptured_lengths)),
            codec_graph_frames=codec.graph_frames_captured() if codec is not None else (),
            graphs_captured=self.graphs_captured + (codec.graphs_captured if codec is not None else 0),
        )

    def generate(
        self,
        prefill: Prefill,
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        stats: StreamStats | None = None,
        consumer_stream: torch.cuda.Stream | None = None,
        more_text: MoreText | None = None,
        max_frames: Callable[[], int] | None = None,
    ) -> Iterator[torch.Tensor | None]:
        """Yield each frame's 16 codes as a (16,) int64 tensor on the model's device, in order.

        more_text: the rest of a text still arriving (prefill.text_complete False): frame t is launched only
        once text row t is known or the text has ended. Before a wait for text this yields None (nothing
        is in flight: a consumer can flush what it holds). Without more_text, None never comes.
        max_frames: the runaway guard's current budget (RunawayGuard.max_frames of the text's tokens so
        far): the generation ends with stopped_by "runaway" at that many frames.

        consumer_stream (CUDA only): the stream the frames are used on; each is cloned on it, ordered
        after its own replay only (module doc). Use the frames on that stream (or record_stream them).
        None: cloned on the current stream.

        stats.frame_ms: on CUDA the device time between consecutive frame completions (the first frame:
        since the prefill completed), so with frames launched ahead it is the time each frame adds; it
        includes other work queued on the stream in between and the device waiting for the host. On CPU
        the wall time of computing the frame. stats.prefill_ms: from the call to the first c0 being ready
        (on CUDA measured with events, without a host sync).

        Not re-entrant: one generation at a time per FrameGenerator (RuntimeError otherwise).
        """
        prompt_len = prefill.inputs_embeds.shape[1]
        if prompt_len > self.max_seq_len:
            raise ValueError(f"prompt of {prompt_len} positions does not fit max_seq_len={self.max_seq_len}")
        if consumer_stream is not None and self.device.type != "cuda":
            raise ValueError(f"consumer_stream needs a CUDA model, this one is on {self.device}")
        if self.use_cuda_graphs:
            self.capture()
        if prefill.text_complete == (more_text is not None):
            raise ValueError("more_text goes with a prefill whose text is not complete, and only then")
        stats = stats if stats is not None else StreamStats()
        text = TextRows(self.state, more_text)
        return self._frames(prefill, sampling, cancel, stats, consumer_stream, text, max_frames)

    def _frames(self, prefill, sampling, cancel, stats, consumer, text, budget) -> Iterator[torch.Tensor]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("FrameGenerator is already generating (one stream at a time)")
        try:
            with torch.no_grad():
                yield from self._utterance(prefill, sampling, cancel, stats, consumer, text, budget)
        finally:
            self._busy.release()

    def _utterance(self, prefill, sampling, cancel, stats, consumer, text, budget) -> Iterator[torch.Tensor]:
        """The hot loop: prefill, then per frame: stop?, launch ahead (or wait for text), EOS?, hand out."""
        clock = _Clock(self.device, stats)
        stats.frames, stats.frame_ms = 0, []
        self.prefills.run(self.state.start(prefill, sampling))
        text.start(prefill.trailing_text_hidden.shape[1])
        clock.prefill_launched()
        max_frames = sampling.max_new_tokens - 1
        n_frames = min(max_frames, self.max_seq_len - prefill.inputs_embeds.shape[1] + 1)
        per_replay, eos = self.frames_per_replay, self.state.eos_token_id
        launches = _Launches(self, text, n_replays=-(-n_frames // per_replay) if n_frames > 0 else 0)

        def stop_before(t: int) -> bool:
            stats.stopped_by = _stop_before(t, cancel, budget)
            return bool(stats.stopped_by)

        try:
            if n_frames <= 0:
                stats.stopped_by = "eos" if int(self.state.code0.item()) == eos else "max_new_tokens"
                return
            for t in range(n_frames):
                if stop_before(t):
                    return
                replay, index = divmod(t, per_replay)
                launches.fill(replay)
                if launches.launched == replay:  # this frame needs text that has not come yet
                    yield None
                    text.wait(replay, cancel)
                    if stop_before(t):  # the wait may have taken long
                        return
                    launches.launch_next()
                if index == 0:  # the only wait: this replay's codes are in the host ring
                    launch = launches.oldest()
                    code0s, frame_ms = self.ring.code0s(launch), clock.frame_ms(launch, per_replay)
                if code0s[index] == eos:
                    stats.stopped_by = "eos"
                    return
                stats.frames += 1
                stats.frame_ms.append(frame_ms)
                yield self.ring.hand_out(launch, index, consumer)
            stats.stopped_by = "max_new_tokens" if n_frames == max_frames else "max_seq_len"
        finally:
            clock.finish(launches.in_flight)  # nothing of this utterance runs on once its iterator is done
            self.ring.finish()
