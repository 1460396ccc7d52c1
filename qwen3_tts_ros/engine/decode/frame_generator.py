"""Frame-by-frame codec-code generation: our own static-cache decode loop on qwen-tts's weights.

Per 12.5 Hz frame t (as qwen-tts's talker.generate does it), all on the device:
  code predictor: [talker hidden, E0(c0)] -> codes 1..15 (15 steps unrolled, sampled on the device)
  frame t = [c0, c1..c15]; next talker input = sum of the 16 codebook embeddings
            + text track row t (trailing_text_hidden[t], or tts_pad_embed once the text is used up)
  talker at position P + t -> hidden, logits -> processed/sampled next c0; step counter t += 1
That whole frame is one capture unit (`_frame`); `frames_per_replay` frames are captured in one CUDA graph.
The text track is copied once per utterance into a static buffer and indexed with the device step
counter, so a replay needs nothing from the host.

Generation ends when c0 is EOS (that frame is not produced), after max_new_tokens - 1 frames (qwen-tts
semantics: the last sampled c0 never gets its residual codebooks), at max_seq_len, or on cancel. The last
two are known on the host in advance (frame count n = min(max_new_tokens - 1, max_seq_len - P + 1)), so
no replay past frame n is launched. EOS is only known on the device, so the host does not wait for it: it
keeps `launch_ahead` replays in flight, each followed by a non-blocking copy of its codes into a pinned
host ring and a CUDA event, and waits on the event of the oldest replay only when it hands out that
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
queues after it) would wait for the replays launched ahead. The generating stream in turn waits for an
event recorded after those clones before it rewrites the ring slot.

On CUDA the units are captured once as CUDA graphs over static buffers; every per-call setting is a
device tensor, so the graphs serve all requests. On CPU the very same functions run eagerly (one replay
is one eager call; the host then has nothing to overlap, so launch_ahead defaults to 1 there).

Optional prefill buckets (`prefill_buckets`): the prompt is padded to the smallest bucket >= P and run as
a captured graph (see talker.py for why padding is harmless). Off by default: a padded forward gives the
real positions the same values only as far as the matmul kernels chosen for the padded size round the same
way, which bench/framegraph_smoke.py checks on the GPU.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from ..cuda_capture import no_cyclic_gc
from ..types import SamplingParams, StreamStats
from .code_predictor import CodePredictor
from .compile import compile_available, layer_functions, sampling_functions
from .fused_frame import FusedFrame, fused_available
from .prefill import Prefill
from .sampling import CodeSampler, TalkerSampler
from .talker import Talker

DEFAULT_LAUNCH_AHEAD = 2  # replays in flight on CUDA: the next frame is queued while the host hands one out
SUGGESTED_PREFILL_BUCKETS = (32, 64, 128, 256)


def check_prefill_buckets(buckets, max_seq_len: int | None = None) -> None:
    """ValueError unless every bucket is a positive prompt length (and, given max_seq_len, fits it)."""
    sizes = list(buckets)
    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ValueError(f"prefill_buckets must be positive prompt lengths, got {sizes}")
    if max_seq_len is not None and sizes and max(sizes) > max_seq_len:
        raise ValueError(f"prefill_buckets {sizes} must be <= max_seq_len={max_seq_len}")


@dataclass
class _PrefillBucket:
    embeds: torch.Tensor  # (1, size, H) static padded prompt
    graph: torch.cuda.CUDAGraph | None = None


def _stop_before(t: int, cancel: threading.Event | None, budget: Callable[[], int] | None) -> str:
    """Why frame t is not produced, known on the host ("" if nothing says so)."""
    if cancel is not None and cancel.is_set():
        return "cancelled"
    if budget is not None and t >= budget():
        return "runaway"
    return ""


class MoreText(Protocol):
    """The rest of a text still arriving (text_stream.py's StreamPiece)."""

    def take_rows(self, block: bool) -> tuple[torch.Tensor | None, bool]:
        """-> ((n, H) text rows known since the last call, or None; whether the text has ended (the rows
        then end with tts_eos)). block: wait until a row or the end is known (or the stream is cancelled)."""


class _TextRows:
    """The text track's rows as they are known, for a text still arriving (or all of it at once)."""

    def __init__(self, generator: FrameGenerator, more: MoreText | None):
        self.generator, self.more = generator, more
        self.known = 0  # rows written into the text track
        self.ended = more is None

    def start(self, rows_in_prefill: int) -> None:
        self.known = rows_in_prefill

    def covers(self, replay: int) -> bool:
        """Every frame of `replay` has its text row (or the text has ended)."""
        return self.ended or self.known >= (replay + 1) * self.generator.frames_per_replay

    def take(self, block: bool) -> None:
        if self.ended:
            return
        rows, self.ended = self.more.take_rows(block)
        gen = self.generator
        if rows is not None:
            rows = rows.to(device=gen.device, dtype=gen.dtype)[: gen.max_seq_len - self.known]
            gen.text_track[self.known : self.known + rows.shape[0]].copy_(rows)
            self.known += rows.shape[0]
        if self.ended:  # frame t reads row min(t, text_len): the pad row from here on
            gen.text_track[self.known].copy_(gen.tts_pad)
            gen.text_len.fill_(self.known)


@dataclass
class _Launch:
    """One replay in flight: its ring slot, and its completion event on CUDA or its wall time on CPU."""

    slot: int
    done: torch.cuda.Event | None
    wall_ms: float


class FrameGenerator:
    def __init__(
        self,
        model,
        *,
        max_seq_len: int = 2048,
        use_cuda_graphs: bool = True,
        launch_ahead: int | None = None,
        frames_per_replay: int = 1,
        prefill_buckets: tuple[int, ...] = (),
        compile: bool | None = None,
        fused: bool | None = False,
    ):
        """model: qwen-tts `Qwen3TTSForConditionalGeneration` (device and dtype are taken from it).

        launch_ahead: replays kept in flight (>= 1; default DEFAULT_LAUNCH_AHEAD on CUDA graphs, else 1).
        frames_per_replay: frames per replay (>= 1), i.e. per captured graph.
        prefill_buckets: prompt sizes to pad prefills to (each <= max_seq_len); () runs prefill unpadded.
        compile: torch.compile the decoder stacks' step function and the samplers (compile.py); None =
            on where available (CUDA with Triton); off with `fused` (nothing left to compile). q/k/v and
            gate/up weights are fused in place either way (layers.py).
        fused: run each frame with the fused Triton kernels (fused_frame.py) instead of the layer
            functions (ValueError where they cannot run); None = where available (CUDA with Triton >= 3).
            The prefill is the same either way.
        """
        talker = model.talker
        weight = talker.codec_head.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.max_seq_len = max_seq_len
        tc = talker.config
        self.eos_token_id = tc.codec_eos_token_id
        self.num_code_groups = tc.num_code_groups
        self.use_cuda_graphs = use_cuda_graphs and self.device.type == "cuda"
        if launch_ahead is None:
            launch_ahead = DEFAULT_LAUNCH_AHEAD if self.use_cuda_graphs else 1
        if launch_ahead < 1 or frames_per_replay < 1:
            raise ValueError(
                f"launch_ahead and frames_per_replay must be >= 1, got {launch_ahead}, {frames_per_replay}"
            )
        check_prefill_buckets(prefill_buckets, max_seq_len)
        self.launch_ahead = int(launch_ahead)
        self.frames_per_replay = int(frames_per_replay)
        self._busy = threading.Lock()
        self._frame_graph: torch.cuda.CUDAGraph | None = None

        if fused and not fused_available(self.device):
            raise ValueError(f"fused kernels need CUDA with Triton >= 3 (device {self.device})")
        self.fused = fused_available(self.device) if fused is None else bool(fused)
        # The fused frame replaces the compiled step functions; the prefill runs eagerly either way, so
        # compiling would only cost start-up time.
        if self.fused:
            self.compiled = False
        else:
            self.compiled = compile_available(self.device) if compile is None else bool(compile)
        fns = layer_functions(self.compiled)
        with torch.no_grad():
            self.talker = Talker(talker, max_seq_len, self.device, self.dtype, fns)
            self.code_predictor = CodePredictor(talker.code_predictor, self.device, self.dtype, fns)
            sampling_fns = sampling_functions(self.compiled)
            self.talker_sampler = TalkerSampler(
                tc.vocab_size, tc.codec_eos_token_id, self.device, sampling_fns
            )
            self.code_sampler = CodeSampler(
                talker.code_predictor.config.vocab_size, self.device, sampling_fns
            )
            # Static state the capture units read and write.
            hidden = dict(device=self.device, dtype=self.dtype)
            index = dict(device=self.device, dtype=torch.long)
            self.past_hidden = torch.zeros(1, 1, tc.hidden_size, **hidden)  # talker output of the last step
            self.code0 = torch.zeros(1, **index)  # sampled codebook-0 id
            self.step = torch.zeros(1, **index)  # index t of the next frame
            self.prompt_len = torch.zeros(1, **index)  # P: frame t's talker step is at position P + t
            # Text track of the talker steps: row t for frame t, row text_len (tts_pad) from then on. Frame t
            # exists only for t <= max_seq_len - P, so max_seq_len text rows + the pad row are enough.
            self.text_track = torch.zeros(max_seq_len + 1, tc.hidden_size, **hidden)
            self.text_len = torch.zeros(1, **index)
            self.last_position = torch.zeros(1, **index)  # P - 1, for padded (bucket) prefills
            self.frames = torch.zeros(self.frames_per_replay, self.num_code_groups, **index)  # one replay
            # Ring of the last `launch_ahead` replays' codes: device copies to hand out, and host copies to
            # read c0 (EOS) from without a sync. A slot is rewritten by the launch `launch_ahead` replays
            # later, which the host enqueues only after every frame of its replay was handed out (cloned).
            self.ring = torch.zeros(self.launch_ahead, *self.frames.shape, **index)
            on_cuda = self.device.type == "cuda"
            self.host_ring = (
                torch.zeros(self.ring.shape, dtype=torch.long, pin_memory=True) if on_cuda else self.ring
            )
            # Per slot: the event after the clones of its frames on a consumer stream, which its rewrite
            # must wait for (None: cloned on the generating stream itself, in order).
            self._slot_read: list[torch.cuda.Event | None] = [None] * self.launch_ahead
            self._buckets = {
                size: _PrefillBucket(torch.zeros(1, size, tc.hidden_size, **hidden))
                for size in sorted(set(prefill_buckets))
            }
            self._fused_frame = FusedFrame(self) if self.fused else None

    # -- capture units ----------------------------------------------------------------------------------
    def _frame(self, index: int) -> None:
        """The whole of frame `step` on the device; its 16 codes go to self.frames[index]."""
        code0 = self.code0
        embed0 = self.talker.codec_embedding(code0[:, None])
        codes = self.code_predictor.predict(self.past_hidden, embed0, self.code_sampler)
        self.frames[index].copy_(torch.cat([code0, *codes]))
        text = self.text_track.index_select(0, torch.minimum(self.step, self.text_len))[None]
        position = torch.clamp(self.prompt_len + self.step, max=self.max_seq_len - 1)
        embed = self.code_predictor.frame_embedding(embed0, codes) + text
        hidden, logits = self.talker.step(embed, position)
        self.past_hidden.copy_(hidden)
        self.code0.copy_(self.talker_sampler(logits))
        self.step.add_(1)

    def _replay_unit(self) -> None:
        for index in range(self.frames_per_replay):
            if self._fused_frame is not None:
                self._fused_frame(self, index)
            else:
                self._frame(index)

    def _prefill(self, embeds: torch.Tensor, last: torch.Tensor | None = None) -> None:
        hidden, logits = self.talker.prefill(embeds, last)
        self.past_hidden.copy_(hidden)
        self.code0.copy_(self.talker_sampler(logits))

    def capture(self) -> float:
        """Capture the CUDA graphs (once, on the calling thread); returns seconds spent. No-op on CPU."""
        if not self.use_cuda_graphs or self._frame_graph is not None:
            return 0.0
        start = time.perf_counter()
        # The warm-up runs draw sampling noise; put the RNG back afterwards, so that a seeded generation
        # gives the same frames whether or not it is the one that triggered the capture.
        rng_state = torch.cuda.get_rng_state(self.device)
        units = [self._replay_unit] + [
            lambda bucket=bucket: self._prefill(bucket.embeds, self.last_position)
            for bucket in self._buckets.values()
        ]
        with torch.no_grad():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: lazy inits and allocator state outside capture
                for _ in range(3):
                    for unit in units:
                        unit()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graphs = []
            with no_cyclic_gc():
                for unit in units:  # one memory pool: the graphs never run concurrently
                    graph = torch.cuda.CUDAGraph()
                    pool = graphs[0].pool() if graphs else None
                    with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
                        unit()
                    graphs.append(graph)
            torch.cuda.synchronize(self.device)
        torch.cuda.set_rng_state(rng_state, self.device)
        self._frame_graph = graphs[0]
        for bucket, graph in zip(self._buckets.values(), graphs[1:]):
            bucket.graph = graph
        return time.perf_counter() - start

    # -- generation -----------------------------------------------------------------------------------
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
        text = _TextRows(self, more_text)
        return self._frames(prefill, sampling, cancel, stats, consumer_stream, text, max_frames)

    def _frames(self, prefill, sampling, cancel, stats, consumer, text, budget) -> Iterator[torch.Tensor]:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("FrameGenerator is already generating (one stream at a time)")
        try:
            with torch.no_grad():
                yield from self._decode(prefill, sampling, cancel, stats, consumer, text, budget)
        finally:
            self._busy.release()

    def _start_utterance(self, prefill: Prefill, sampling: SamplingParams) -> None:
        """Settings, counters and text track of one utterance, then its prefill (sets past_hidden, c0)."""
        to_model = dict(device=self.device, dtype=self.dtype)
        embeds = prefill.inputs_embeds.to(**to_model)
        prompt_len = embeds.shape[1]
        trailing = prefill.trailing_text_hidden.to(**to_model)[0, : self.max_seq_len]
        self.text_track[: trailing.shape[0]].copy_(trailing)
        self.tts_pad = prefill.tts_pad_embed.to(**to_model).view(-1)
        if prefill.text_complete:
            self.text_track[trailing.shape[0]].copy_(self.tts_pad)
            self.text_len.fill_(trailing.shape[0])
        else:  # rows are added as the text arrives (_TextRows); until it ends, row t is read for frame t
            self.text_track[self.max_seq_len].copy_(self.tts_pad)
            self.text_len.fill_(self.max_seq_len)
        self.prompt_len.fill_(prompt_len)
        self.step.zero_()
        self.talker_sampler.set(sampling)
        self.code_sampler.set(sampling)
        self.talker_sampler.reset()
        bucket = next((b for size, b in self._buckets.items() if size >= prompt_len), None)
        if bucket is None:
            self._prefill(embeds)
            return
        bucket.embeds[:, :prompt_len].copy_(embeds)  # rows past P keep earlier (finite) prompts: masked
        self.last_position.fill_(prompt_len - 1)
        if bucket.graph is not None:
            bucket.graph.replay()
        else:
            self._prefill(bucket.embeds, self.last_position)

    def _launch(self, replay: int) -> _Launch:
        """Run (enqueue, on CUDA) one replay and the copies of its codes into ring slot replay % size."""
        slot = replay % self.launch_ahead
        start = time.perf_counter()
        if self._frame_graph is not None:
            self._frame_graph.replay()
        else:
            self._replay_unit()
        read = self._slot_read[slot]
        if read is not None:  # after the replay: only the copy into the slot has to wait for that read
            torch.cuda.current_stream(self.device).wait_event(read)
            self._slot_read[slot] = None
        self.ring[slot].copy_(self.frames)
        done = None
        if self.device.type == "cuda":
            self.host_ring[slot].copy_(self.frames, non_blocking=True)
            done = torch.cuda.Event(enable_timing=True)
            done.record()
        return _Launch(slot, done, (time.perf_counter() - start) * 1000)

    def _decode(self, prefill, sampling, cancel, stats, consumer, text, budget) -> Iterator[torch.Tensor]:
        start = time.perf_counter()
        on_cuda = self.device.type == "cuda"
        prefill_start = prefill_done = None
        if on_cuda:
            prefill_start = torch.cuda.Event(enable_timing=True)
            prefill_start.record()
        prompt_len = prefill.inputs_embeds.shape[1]
        self._start_utterance(prefill, sampling)
        text.start(prefill.trailing_text_hidden.shape[1])
        stats.prefill_ms = 0.0
        stats.frames = 0
        stats.frame_ms = []
        if on_cuda:
            prefill_done = torch.cuda.Event(enable_timing=True)
            prefill_done.record()
        else:
            stats.prefill_ms = (time.perf_counter() - start) * 1000

        max_frames = sampling.max_new_tokens - 1
        n_frames = min(max_frames, self.max_seq_len - prompt_len + 1)  # prompt_len <= max_seq_len
        per_replay = self.frames_per_replay
        n_replays = -(-n_frames // per_replay) if n_frames > 0 else 0
        in_flight: deque[_Launch] = deque()
        launched = 0
        previous_done = prefill_done
        last_read = None  # the event after the latest clone on the consumer stream
        try:
            if n_frames <= 0:
                eos = int(self.code0.item()) == self.eos_token_id
                stats.stopped_by = "eos" if eos else "max_new_tokens"
                return
            for t in range(n_frames):
                stats.stopped_by = _stop_before(t, cancel, budget)
                if stats.stopped_by:
                    return
                replay, index = divmod(t, per_replay)
                ahead = 1 if replay == 0 else self.launch_ahead
                text.take(block=False)
                while launched < min(replay + ahead, n_replays) and text.covers(launched):
                    in_flight.append(self._launch(launched))
                    launched += 1
                if launched == replay:  # this frame needs text that has not come yet
                    yield None
                    while not text.covers(launched) and not (cancel is not None and cancel.is_set()):
                        text.take(block=True)
                    stats.stopped_by = _stop_before(t, cancel, budget)  # the wait may have taken long
                    if stats.stopped_by:
                        return
                    in_flight.append(self._launch(launched))
                    launched += 1
                if index == 0:
                    launch = in_flight.popleft()
                    if launch.done is not None:
                        launch.done.synchronize()  # the only wait: this replay's codes are in host_ring
                        if previous_done is prefill_done:
                            stats.prefill_ms = prefill_start.elapsed_time(prefill_done)
                        frame_ms = previous_done.elapsed_time(launch.done) / per_replay
                        previous_done = launch.done
                    else:
                        frame_ms = launch.wall_ms / per_replay
                    code0s = self.host_ring[launch.slot, :, 0].tolist()
                    if consumer is not None:  # this replay only, not the ones launched after it
                        consumer.wait_event(launch.done)
                if code0s[index] == self.eos_token_id:
                    stats.stopped_by = "eos"
                    return
                stats.frames += 1
                stats.frame_ms.append(frame_ms)
                if consumer is None:
                    yield self.ring[launch.slot, index].clone()
                    continue
                with torch.cuda.stream(consumer):
                    frame = self.ring[launch.slot, index].clone()
                last_read = self._slot_read[launch.slot] = torch.cuda.Event()
                last_read.record(consumer)
                yield frame
            stats.stopped_by = "max_new_tokens" if n_frames == max_frames else "max_seq_len"
        finally:
            if on_cuda:  # nothing of this utterance keeps running once its iterator is done
                (in_flight[-1].done if in_flight else prefill_done).synchronize()
                if last_read is not None:
                    last_read.synchronize()
                stats.prefill_ms = prefill_start.elapsed_time(prefill_done)
