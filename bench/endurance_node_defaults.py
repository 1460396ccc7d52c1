"""Endurance of the node's synthesis path with EXACTLY the node's defaults (config/tts.yaml), on the GPU.

Drives qwen3_tts_ros/node/worker.py's SynthesisWorker (the thread the node runs, minus rclpy) on a full-size
random 0.6B or 1.7B model (bench/full_size_checkpoint.py): texts of mixed length (one word to three
sentences, split into sentence utterances as the node splits them), every --stop-every'th utterance
stopped mid-utterance (as the ~/stop service does, right after its second chunk was published), and every
--cycle-every utterances a deactivate / cleanup / configure / activate cycle (worker release, load,
capture + warm-up) with the next voice of the checkpoint (each custom-voice speaker in turn, and the 1.7B's
optional instruct; base: voice clone with reference text and x-vector only). Everything else is read
from config/tts.yaml: CUDA graphs, compile, prefill buckets, side-stream codec (the engine's default),
1-frame first chunk, 4-frame chunks, sampling on. Only two values differ from the file: `model` (the
written checkpoint) and `sampling.max_new_tokens`: random weights with sampling rarely emit EOS, so each
text gets max_new_tokens = 1 + min(--max-frames, 4 + --frames-per-word * words of its longest sentence)
(the frames bound of bench/endurance.py's --frames, scaled with the text), which the output states.

    bash bench/gpu_suite.sh node0b6      (GPU, through the device tool; see gpu_suite.sh)
    python bench/endurance_node_defaults.py --size 0b6 --utterances 2000 --cycle-every 200 --budget-s 480 \\
        --out bench/results/endurance_node_0b6.json
    python bench/endurance_node_defaults.py --tiny --utterances 12 --block 4 --cycle-every 8   (CPU check)

--budget-s: wall seconds from the start of this process; before each text and each cycle the run checks
that it (estimated from the ones so far) plus --reserve-s still fit, otherwise it stops cleanly, so a
device call with a hard limit keeps its results. The JSON (--out) is rewritten after every block.

Per block of --block utterances (one JSON line each, and in --out): host RSS (and its anonymous / file-
backed parts, mappings, threads), GPU allocated / reserved / peak, frame ms p50 / p95 / max over every frame
(CUDA events between frame completions), time to first audio p50 / p95 (the worker's own figure: start of
the utterance to its first published chunk), graph captures and dynamo compiles since the end of the first
activation, split into those while speaking (must stay 0) and those in lifecycle cycles (a reload captures
its graphs anew, by design; compiles must stay 0), the prefills run uncaptured (prompts longer than the
largest bucket) and how many of their prompt lengths are new, and the host-memory probes: pinned host
allocator (torch.cuda.host_memory_stats), glibc mallinfo2, live objects (tensors by device / pinned, CUDA
events, CUDA graphs, streams), dynamo cache entries of the compiled functions and inductor's loaded modules,
the engine's capture report (frame path, frame, prefill buckets, codec graph per chunk size); optional:
--tracemalloc N (top 10 growth sites per block, N frames each), --malloc-trim (RSS before / after glibc
malloc_trim(0) each block: freed-but-retained heap vs live memory), --shape-probe N (at the end: N uncaptured
talker prefills at new prompt lengths, then the same lengths again: host memory and time per new length, the
SDPA backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
import wave
import weakref

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.endurance import WORDS  # noqa: E402
from qwen3_tts_ros.engine.stats import percentile  # noqa: E402
from qwen3_tts_ros.node.settings import load_config, utterance_settings  # noqa: E402
from qwen3_tts_ros.node.text import clean_text, split_sentences  # noqa: E402
from qwen3_tts_ros.node.worker import SynthesisWorker  # noqa: E402
from qwen3_tts_ros.node.worker_types import QueuedText  # noqa: E402
from qwen3_tts_ros.testing import process_memory as pm  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WAIT_S = 900.0  # longest wait for one transition or text (a cold compile of the first activate included)
INSTRUCT = "Speak slowly and clearly."
REF_TEXT = "This is the reference voice of the endurance run."


def mb(n_bytes) -> float:
    return round(n_bytes / 2**20, 3)


def node_parameters(path: str) -> dict:
    """The ros__parameters of config/tts.yaml (the "/**" entry): the node's defaults."""
    with open(path) as f:
        return dict(yaml.safe_load(f)["/**"]["ros__parameters"])


# ------------------------------------------------------------------------------------------- texts
def make_text(rng: random.Random) -> str:
    """One word, a phrase, or one to three sentences of robot talk."""
    def sentence(lo, hi):
        words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
        return " ".join(words).capitalize() + rng.choice(".!?")

    kind = rng.random()
    if kind < 0.15:
        return rng.choice(WORDS).capitalize()
    if kind < 0.35:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    return " ".join(sentence(4, 14) for _ in range(1 if kind < 0.65 else 2 if kind < 0.85 else 3))


def frame_bound(segments: list[str], frames_per_word: int, max_frames: int) -> int:
    """Most frames of each utterance of a text (see the module doc)."""
    words = max(len(s.split()) for s in segments)
    return min(max_frames, 4 + frames_per_word * words)


# ------------------------------------------------------------------------------------------- probes
class EngineProbe:
    """What the worker's engine did, read from its public capture report (engine.capture_report()), across
    every engine the worker loads: CUDA graphs captured (frame, prefill buckets, codec chunk sizes) per phase,
    prefills run uncaptured and their distinct prompt lengths, and the stats of the latest stream (its
    per-frame times: the node's latency record has only their summary, and the blocks pool the frames)."""

    def __init__(self):
        self.phase = "lifecycle"  # "speaking" while texts are spoken
        self.captures = {"lifecycle": 0, "speaking": 0}
        self.compiles = {"lifecycle": 0, "speaking": 0}
        self.worker: SynthesisWorker | None = None
        self.last_stats = None
        self._counted = (lambda: None, 0)  # (the engine counted last, weakly; its graphs_captured then)
        self.compile_hook = self._hook_compiles()

    @property
    def engine(self):
        return self.worker.model.engine if self.worker is not None else None

    def count(self):
        """Add the graphs captured since the last count to the current phase; -> the engine's report (None
        when no engine is loaded). A newly loaded engine's stream is wrapped to keep its stats."""
        engine = self.engine
        if engine is None:
            return None
        report = engine.capture_report()
        counted_engine, before = self._counted
        if counted_engine() is not engine:
            before = 0
            self._keep_stats(engine)
        self.captures[self.phase] += report.graphs_captured - before
        self._counted = (weakref.ref(engine), report.graphs_captured)
        return report

    def _keep_stats(self, engine) -> None:
        stream, probe = engine.stream, self

        def recording_stream(request, **kwargs):
            audio = stream(request, **kwargs)
            probe.last_stats = audio.stats
            return audio

        engine.stream = recording_stream  # this engine only, released with it

    def _hook_compiles(self) -> str:
        """Count dynamo compilations through its compile-start callback (torch >= 2.6); else only the
        counters of torch._dynamo.utils are reported."""
        try:
            from torch._dynamo.callback import on_compile_start
        except ImportError:
            return "none (torch._dynamo.callback missing)"

        def counted(*args):
            self.compiles[self.phase] += 1

        on_compile_start(counted)
        return "torch._dynamo.callback.on_compile_start"

    def graphs(self) -> dict:
        """The loaded engine's capture report (frame path, graphs, prefills) and its codec stream."""
        engine = self.engine
        report = self.count()
        if report is None:
            return {}
        return dict(dataclasses.asdict(report), codec_side_stream=engine.decode_cuda_stream is not None)


def dynamo_state() -> dict:
    """dynamo's counters and the cache entries (compiled variants) of the engine's compiled functions."""
    from qwen3_tts_ros.engine.frame.layers import stack_forward
    from qwen3_tts_ros.engine.frame.sampling import choose_token, process_scores

    state = {}
    try:
        from torch._dynamo.utils import counters

        state["unique_graphs"] = int(counters["stats"]["unique_graphs"])
        state["frames_total"] = int(counters["frames"]["total"])
        state["frames_ok"] = int(counters["frames"]["ok"])
    except (ImportError, KeyError):
        pass
    try:
        from torch._dynamo.eval_frame import _debug_get_cache_entry_list

        state["cache_entries"] = {
            fn.__name__: len(_debug_get_cache_entry_list(fn.__code__))
            for fn in (stack_forward, process_scores, choose_token)
        }
    except ImportError:
        pass
    try:
        from torch._inductor.codecache import PyCodeCache

        state["inductor_modules_loaded"] = len(PyCodeCache.modules) + len(PyCodeCache.modules_no_attr)
    except ImportError:
        pass
    return state


def directory_mb(path: str | None) -> float | None:
    if not path or not os.path.isdir(path):
        return None
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return mb(total)


def object_census() -> dict:
    """Live objects the engine could accumulate: tensors (CPU ones by unique storage, pinned ones apart),
    CUDA events, graphs and streams, and all gc-tracked objects."""
    counts = dict(gc_objects=0, cuda_tensors=0, cpu_tensors=0, cpu_tensor_mb=0.0, pinned_tensors=0,
                  pinned_mb=0.0, cuda_events=0, cuda_graphs=0, cuda_streams=0)
    storages, pinned = {}, {}
    cuda = torch.cuda.is_available()
    with warnings.catch_warnings():  # isinstance() reads __class__, which some deprecated torch names warn on
        warnings.simplefilter("ignore")
        objects = gc.get_objects()
        for obj in objects:
            counts["gc_objects"] += 1
            try:  # (dynamo's fake tensors have no storage to count, proxies may refuse)
                if isinstance(obj, torch.Tensor):
                    if obj.is_cuda:
                        counts["cuda_tensors"] += 1
                    elif obj.device.type == "cpu" and not obj.is_meta:
                        storage = obj.untyped_storage()
                        counts["cpu_tensors"] += 1
                        storages[storage.data_ptr()] = storage.nbytes()
                        if cuda and obj.is_pinned():
                            pinned[storage.data_ptr()] = storage.nbytes()
                elif cuda and isinstance(obj, torch.cuda.Event):
                    counts["cuda_events"] += 1
                elif cuda and isinstance(obj, torch.cuda.CUDAGraph):
                    counts["cuda_graphs"] += 1
                elif cuda and isinstance(obj, torch.cuda.Stream):
                    counts["cuda_streams"] += 1
            except Exception:  # noqa: BLE001 - a census must not end the run
                continue
        del objects
    counts.update(cpu_tensor_mb=mb(sum(storages.values())), pinned_tensors=len(pinned),
                  pinned_mb=mb(sum(pinned.values())))
    return counts


class TraceMalloc:
    """tracemalloc snapshots; each block reports the 10 source lines whose allocations grew most since
    the previous snapshot, and the traced total."""

    def __init__(self, frames: int):
        self.frames = frames
        self.previous = None

    def start(self) -> None:
        """After the first activation: tracing a cold torch.compile would slow it several times."""
        if self.frames:
            tracemalloc.start(self.frames)

    def report(self) -> dict | None:
        if not self.frames:
            return None
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
        )
        current, peak = tracemalloc.get_traced_memory()
        top = []
        if self.previous is not None:
            for stat in snapshot.compare_to(self.previous, "lineno")[:10]:
                frame = stat.traceback[0]
                top.append(dict(site=f"{frame.filename}:{frame.lineno}", count_diff=stat.count_diff,
                                size_diff_kb=round(stat.size_diff / 1024, 1),
                                size_kb=round(stat.size / 1024, 1)))
        self.previous = snapshot
        return dict(traced_mb=mb(current), traced_peak_mb=mb(peak), top_growth=top)


def host_memory(trim: bool) -> dict:
    status = pm.memory_status()
    out = {f"{k.lower()}_mb" if k != "Threads" else "threads": (mb(v) if k != "Threads" else v)
           for k, v in status.items()}
    out["mappings"] = pm.mapping_count()
    info = pm.mallinfo2()
    if info is not None:
        names = ("arena", "hblkhd", "uordblks", "fordblks", "keepcost")
        out["malloc_mb"] = {name: mb(info[name]) for name in names}
    if trim:
        released = pm.malloc_trim()
        out["after_trim_rss_mb"] = mb(pm.rss_bytes())
        out["trim_released"] = released
    return out


def gpu_memory() -> dict:
    if not torch.cuda.is_available():
        return {}
    torch.cuda.synchronize()
    stats = torch.cuda.memory_stats()
    host = torch.cuda.host_memory_stats() if hasattr(torch.cuda, "host_memory_stats") else {}
    out = dict(
        gpu_allocated_mb=mb(torch.cuda.memory_allocated()),
        gpu_reserved_mb=mb(torch.cuda.memory_reserved()),
        gpu_peak_mb=mb(torch.cuda.max_memory_allocated()),
        device_mallocs=int(stats.get("num_device_alloc", 0)),
        device_frees=int(stats.get("num_device_free", 0)),
    )
    if host:
        out["pinned_host"] = dict(
            blocks=int(host.get("allocations.current", 0)),
            mb=mb(host.get("allocated_bytes.current", 0)),
            cuda_host_allocs=int(host.get("num_host_alloc", 0)),
            handouts_total=int(host.get("active_requests.allocated", 0)),
        )
    torch.cuda.reset_peak_memory_stats()
    return out


# ------------------------------------------------------------------------------------------- node glue
class NodeSink:
    """The worker's sink and logger: checks every utterance's chunks, stops every `stop_every`'th
    utterance right after its second chunk (as the node's ~/stop does), keeps the latency records."""

    def __init__(self, probe: EngineProbe, stop_every: int):
        self.probe = probe
        self.stop_every = stop_every
        self.worker: SynthesisWorker | None = None
        self.cond = threading.Condition()
        self.started = 0  # utterances with a first chunk
        self.records: list[dict] = []  # latency records (+ frame_ms) not yet taken by a block
        self.stop_due = False
        self.stops = 0
        self.bad_chunks: list[str] = []
        self.errors: list[str] = []
        self._next_sequence: dict[int, int] = {}

    def chunk(self, utterance_id, sequence, frame_start, frame_count, is_final, data):
        expected = self._next_sequence.pop(utterance_id, 0)
        if sequence != expected:
            self.bad_chunks.append(f"utterance {utterance_id}: sequence {sequence}, expected {expected}")
        if not is_final:
            self._next_sequence[utterance_id] = sequence + 1
        if sequence == 0:
            with self.cond:
                self.started += 1
                if self.stop_every and self.started % self.stop_every == 0:
                    self.stop_due = True
                self.cond.notify_all()
        if self.stop_due and sequence == 1 and not is_final:
            self.stop_due = False
            self.stops += 1
            self.worker.stop(clear_queue=False)

    def speaking(self, value):
        pass

    def latency(self, record):
        stats = self.probe.last_stats
        record = dict(record, frame_ms_list=list(stats.frame_ms) if stats is not None else [])
        with self.cond:
            self.records.append(record)

    def take_records(self) -> list[dict]:
        with self.cond:
            records, self.records = self.records, []
        return records

    def info(self, message):
        print(json.dumps(dict(log="info", message=message)), flush=True)

    def warning(self, message):
        print(json.dumps(dict(log="warning", message=message)), flush=True)

    def error(self, message):
        self.errors.append(message)
        print(json.dumps(dict(log="error", message=message)), flush=True)


def speak_text(worker: SynthesisWorker, sink: NodeSink, segments, settings, values) -> None:
    """One text through the node's queue; returns when it was spoken (or stopped)."""
    with sink.cond:
        before = sink.started
    dropped = worker.enqueue(QueuedText(segments, settings, time.monotonic()), values["queue.policy"],
                             values["queue.max_size"])
    if dropped is None:
        raise RuntimeError("the worker is not accepting texts")
    with sink.cond:
        if not sink.cond.wait_for(lambda: sink.started > before, WAIT_S):
            raise RuntimeError(f"no first chunk within {WAIT_S:.0f} s")
    if not worker.wait_idle(WAIT_S):
        raise RuntimeError(f"text not finished within {WAIT_S:.0f} s")


def voice_variants(values: dict, kind: str, size: str, ref_audio: str, speakers: list[str]) -> list[dict]:
    """The voices the cycles go through (parameter overrides): the checkpoint's prompt kinds."""
    if kind == "custom_voice":
        speakers = speakers[1:] + speakers[:1]  # the first speaker is the node's default, configured first
        variants = [{"voice.speaker": s} for s in speakers]
        if size == "1b7":  # only the 1.7B CustomVoice model takes an instruct
            variants += [{"voice.speaker": s, "voice.instruct": INSTRUCT} for s in speakers[:2]]
        return variants
    if kind == "base":
        clone = {"voice.ref_audio": ref_audio, "voice.ref_text": REF_TEXT}
        return [dict(clone, **{"voice.x_vector_only": False}), dict(clone, **{"voice.x_vector_only": True})]
    return [{"voice.instruct": "A calm, warm voice."}, {"voice.instruct": "A bright, fast voice."}]


def write_reference_audio(path: str, seconds: float = 3.0) -> str:
    """A 24 kHz mono WAV (a tone with noise) as voice-clone reference."""
    rate = 24000
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(0)
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes())
    return path


# ------------------------------------------------------------------------------------------- the run
class Run:
    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic() - pm.process_age_s()  # the budget counts the imports too
        self.out: dict = {}
        self.probe = EngineProbe()
        self.sink = NodeSink(self.probe, args.stop_every)
        self.worker = SynthesisWorker(sink=self.sink, logger=self.sink)
        self.sink.worker = self.probe.worker = self.worker
        self.trace = TraceMalloc(args.tracemalloc)
        self.text_s: list[float] = []
        self.cycle_s: list[float] = []
        self.stop_reason = ""
        self.shape_probe_s = 5.0 + 0.1 * args.shape_probe if args.shape_probe else 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def fits(self, seconds: float, tail: bool = True) -> bool:
        """Whether `seconds` more (and the shape probe, with tail) still leave --reserve-s of the budget."""
        more = seconds + self.args.reserve_s + (self.shape_probe_s if tail else 0.0)
        return not self.args.budget_s or self.elapsed() + more <= self.args.budget_s

    def save(self) -> None:
        if not self.args.out:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.args.out)), exist_ok=True)
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.out, f, indent=1)
        os.replace(tmp, self.args.out)

    def emit(self, key: str, value) -> None:
        print(json.dumps({key: value}), flush=True)

    def on_worker(self, fn):
        return self.worker.call(fn).result(WAIT_S)

    def configure_activate(self, values: dict) -> dict:
        t0 = time.monotonic()
        loaded = self.worker.load(load_config(values)).result(WAIT_S)
        t1 = time.monotonic()
        activated = self.worker.activate().result(WAIT_S)
        self.worker.set_accepting(True)
        return dict(configure_s=round(t1 - t0, 2), activate_s=round(time.monotonic() - t1, 2),
                    configured=loaded, activated=activated)

    @staticmethod
    def memory_now() -> dict:
        return dict(host_rss_mb=mb(pm.rss_bytes()), **gpu_memory())

    def cycle(self, values: dict, variant: dict, index: int) -> dict:
        """deactivate, cleanup, configure (the next voice), activate: what the lifecycle node does."""
        self.on_worker(self.probe.count)  # what was captured while speaking, before this engine goes
        self.probe.phase = "lifecycle"
        t0 = time.monotonic()
        self.worker.set_accepting(False)  # deactivate
        self.worker.stop(clear_queue=True)
        self.worker.wait_idle(WAIT_S)
        released = self.worker.release().result(WAIT_S)  # cleanup
        after_release = self.on_worker(self.memory_now)
        record = dict(cycle=index, voice=variant, released=released, after_release=after_release)
        record.update(self.configure_activate(dict(values, **variant)))
        record["seconds"] = round(time.monotonic() - t0, 2)
        record["after_activate"] = self.on_worker(self.memory_now)
        self.on_worker(self.probe.count)
        self.cycle_s.append(record["seconds"])
        self.probe.phase = "speaking"
        return record

    def measure_block(self, index: int, records: list[dict], report_before, seen_lengths, wall_s) -> dict:
        """report_before: the engine's capture report at the start of the block."""
        frame_ms = [ms for r in records for ms in r["frame_ms_list"]]
        ttfa = [r["time_to_first_audio_ms"] for r in records if r["time_to_first_audio_ms"] > 0]
        audio_s = sum(r["audio_seconds"] for r in records)

        def probes():
            gc.collect()
            result = dict(gpu_memory(), host=host_memory(self.args.malloc_trim), dynamo=dynamo_state(),
                          graphs=self.probe.graphs())
            if self.args.census:
                result["objects"] = object_census()
            return result

        measured = self.on_worker(probes)
        graphs = measured["graphs"]
        if report_before is not None:  # lengths from before the block (the warm-up's) are not new
            seen_lengths.update(report_before.uncaptured_prefill_lengths)
        lengths = set(graphs.get("uncaptured_prefill_lengths", ()))
        new_lengths = sorted(lengths - seen_lengths)
        seen_lengths.update(lengths)
        uncaptured = graphs.get("uncaptured_prefills", 0)
        if report_before is not None:
            uncaptured -= report_before.uncaptured_prefills
        block = dict(
            block=index,
            utterances_done=self.utterances,
            utterances=len(records),
            stopped=sum(bool(r["interrupted"]) for r in records),
            errors=sum(bool(r["error"]) and r["error"] != "stopped" for r in records),
            frames=len(frame_ms),
            frame_ms_p50=round(percentile(frame_ms, 50), 3),
            frame_ms_p95=round(percentile(frame_ms, 95), 3),
            frame_ms_max=round(max(frame_ms), 3) if frame_ms else 0.0,
            ttfa_ms_p50=round(percentile(ttfa, 50), 2),
            ttfa_ms_p95=round(percentile(ttfa, 95), 2),
            rtf=round(audio_s / wall_s, 3) if wall_s else 0.0,
            wall_s=round(wall_s, 2),
            host_rss_mb=measured["host"]["vmrss_mb"],
            gpu_allocated_mb=measured.get("gpu_allocated_mb", 0.0),
            gpu_reserved_mb=measured.get("gpu_reserved_mb", 0.0),
            captures_speaking=self.probe.captures["speaking"],
            captures_lifecycle=self.probe.captures["lifecycle"] - self.captures_at_warm,
            compiles_speaking=self.probe.compiles["speaking"],
            compiles_lifecycle=self.probe.compiles["lifecycle"] - self.compiles_at_warm,
            cycles_done=len(self.out["cycles"]),
            uncaptured_prefills=dict(count=uncaptured, new_lengths=len(new_lengths)),
            probes=measured,
            partial=len(records) < self.args.block,
        )
        tm = self.trace.report()
        if tm is not None:
            block["tracemalloc"] = tm
        return block

    def speak_blocks(self, values: dict, variants: list[dict]) -> None:
        args = self.args
        rng = random.Random(args.seed)
        base = utterance_settings(values)
        self.utterances = 0
        seen_lengths: set[int] = set()
        next_cycle = args.cycle_every or math.inf
        block_index = 0
        self.probe.phase = "speaking"
        while self.utterances < args.utterances and not self.stop_reason:
            block_start, wall_s = self.utterances, 0.0
            report_before = self.on_worker(self.probe.count)
            self.sink.take_records()
            while self.utterances - block_start < args.block and self.utterances < args.utterances:
                estimate = float(np.mean(self.text_s[-50:])) if self.text_s else 5.0
                if not self.fits(estimate):
                    self.stop_reason = f"budget: {self.elapsed():.0f} s used of {args.budget_s:.0f}"
                    break
                segments = split_sentences(clean_text(make_text(rng)))
                limit = frame_bound(segments, args.frames_per_word, args.max_frames)
                settings = dataclasses.replace(
                    base, sampling=dict(base.sampling, max_new_tokens=limit + 1))
                before = len(self.sink.records)
                t0 = time.monotonic()
                speak_text(self.worker, self.sink, segments, settings, values)
                self.text_s.append(time.monotonic() - t0)
                wall_s += self.text_s[-1]
                self.utterances += len(self.sink.records) - before
            records = self.sink.take_records()
            if not records:
                break
            block = self.measure_block(block_index, records, report_before, seen_lengths, wall_s)
            self.out["blocks"].append(block)
            self.emit("block", {k: v for k, v in block.items() if k not in ("probes", "tracemalloc")})
            self.save()
            block_index += 1
            while (self.utterances >= next_cycle and len(self.out["cycles"]) < args.cycles
                   and self.utterances < args.utterances and not self.stop_reason):
                estimate = max(self.cycle_s) if self.cycle_s else args.cycle_estimate_s
                if not self.fits(estimate):
                    self.stop_reason = f"budget: no room for a cycle at {self.elapsed():.0f} s"
                    break
                index = len(self.out["cycles"])
                record = self.cycle(values, variants[index % len(variants)], index)
                self.out["cycles"].append(record)
                self.emit("cycle", record)
                self.save()
                next_cycle += args.cycle_every

    def shape_probe(self) -> dict:
        """Uncaptured talker prefills at new prompt lengths (above the largest bucket), then at the same
        lengths again: host memory and time per new shape (eager kernels' per-shape host state)."""
        engine = self.probe.engine
        fg = engine.frame_generator
        tc = engine.model.config.talker_config
        start = max(engine.capture_report().prefill_bucket_graphs, default=64) + 1
        lengths = [start + 3 * i for i in range(self.args.shape_probe) if start + 3 * i <= fg.max_seq_len]
        cuda = fg.device.type == "cuda"

        def sync():
            if cuda:
                torch.cuda.synchronize()

        def prefills(lengths):
            generator = torch.Generator(device=fg.device).manual_seed(self.args.seed)
            rss0, status0, ms = pm.rss_bytes(), pm.memory_status(), []
            for n in lengths:
                embeds = (torch.randn(1, n, tc.hidden_size, device=fg.device, generator=generator) * 0.05)
                sync()
                t0 = time.perf_counter()
                with torch.no_grad():
                    fg.state.talker.prefill(embeds.to(fg.dtype))
                sync()
                ms.append((time.perf_counter() - t0) * 1000)
            gc.collect()
            status = pm.memory_status()
            return dict(lengths=len(lengths), ms_p50=round(percentile(ms, 50), 2),
                        ms_max=round(max(ms), 2) if ms else 0.0,
                        rss_growth_mb=mb(pm.rss_bytes() - rss0),
                        rss_anon_growth_mb=mb(status.get("RssAnon", 0) - status0.get("RssAnon", 0)),
                        rss_file_growth_mb=mb(status.get("RssFile", 0) - status0.get("RssFile", 0)))

        def run():
            result = dict(first_length=lengths[0] if lengths else 0, step=3)
            if cuda and hasattr(torch, "_fused_sdp_choice") and lengths:  # what eager prefill attention runs
                heads, kv = tc.num_attention_heads, tc.num_key_value_heads
                like = dict(device=fg.device, dtype=fg.dtype)
                q = torch.zeros(1, kv, heads // kv * lengths[0], tc.head_dim, **like)  # layers.py's GQA fold
                k = torch.zeros(1, kv, fg.max_seq_len, tc.head_dim, **like)
                mask = torch.ones(1, 1, q.shape[2], k.shape[2], device=fg.device, dtype=torch.bool)
                try:
                    choice = int(torch._fused_sdp_choice(q, k, k, mask, 0.0, False))
                    from torch.nn.attention import SDPBackend

                    result["sdpa_backend"] = SDPBackend(choice).name
                except Exception as exc:  # noqa: BLE001 - a private torch call: report, go on
                    result["sdpa_backend"] = f"unknown ({type(exc).__name__}: {exc})"
            result["new_lengths"] = prefills(lengths)
            result["same_lengths_again"] = prefills(lengths)
            n = max(len(lengths), 1)
            result["kb_per_new_length"] = round(
                (result["new_lengths"]["rss_growth_mb"] - result["same_lengths_again"]["rss_growth_mb"])
                * 1024 / n, 1)
            return result

        return self.on_worker(run)

    def summary(self) -> dict:
        blocks = [b for b in self.out["blocks"] if not b["partial"]] or self.out["blocks"]
        if not blocks:
            return {}
        first, last = blocks[0], blocks[-1]
        second = blocks[1] if len(blocks) > 1 else first
        rss = [b["host_rss_mb"] for b in blocks]
        after_first = blocks[1:]
        slope = 0.0
        if len(after_first) >= 2:
            x = np.array([b["utterances_done"] for b in after_first], dtype=float)
            y = np.array([b["host_rss_mb"] for b in after_first], dtype=float)
            slope = float(np.polyfit(x, y, 1)[0]) * 1000
        alloc = [b["gpu_allocated_mb"] for b in blocks]
        reserved = [b["gpu_reserved_mb"] for b in blocks]
        frame_ratio = last["frame_ms_p95"] / second["frame_ms_p95"] if second["frame_ms_p95"] else 0.0
        ttfa_ratio = last["ttfa_ms_p95"] / second["ttfa_ms_p95"] if second["ttfa_ms_p95"] else 0.0
        totals = self.out["blocks"]
        summary = dict(
            utterances=self.utterances,
            texts=len(self.text_s),
            stopped=sum(b["stopped"] for b in totals),
            errors=sum(b["errors"] for b in totals),
            stop_requests=self.sink.stops,
            bad_chunks=len(self.sink.bad_chunks),
            cycles=len(self.out["cycles"]),
            full_blocks=len(blocks),
            host_rss_by_block_mb=rss,
            host_rss_growth_after_first_block_mb=round(last["host_rss_mb"] - first["host_rss_mb"], 2),
            host_rss_max_above_first_block_mb=round(max(rss) - first["host_rss_mb"], 2),
            host_rss_slope_mb_per_1000_utterances=round(slope, 3),
            gpu_allocated_spread_mb=round(max(alloc) - min(alloc), 3),
            gpu_reserved_spread_mb=round(max(reserved) - min(reserved), 3),
            captures_while_speaking=self.probe.captures["speaking"],
            captures_in_cycles=self.probe.captures["lifecycle"] - self.captures_at_warm,
            compiles_after_warm_up=(self.probe.compiles["speaking"] + self.probe.compiles["lifecycle"]
                                    - self.compiles_at_warm),
            frame_p95_last_over_second=round(frame_ratio, 3),
            ttfa_p95_last_over_second=round(ttfa_ratio, 3),
            frame_p95_by_block=[b["frame_ms_p95"] for b in blocks],
            ttfa_p95_by_block=[b["ttfa_ms_p95"] for b in blocks],
            stop_reason=self.stop_reason or "done",
            elapsed_s=round(self.elapsed(), 1),
        )
        summary["targets"] = dict(
            host_rss_flat_10mb=abs(summary["host_rss_max_above_first_block_mb"]) <= 10
            and abs(summary["host_rss_growth_after_first_block_mb"]) <= 10,
            gpu_flat_1mb=summary["gpu_allocated_spread_mb"] < 1 and summary["gpu_reserved_spread_mb"] < 1,
            no_recapture=summary["captures_while_speaking"] == 0,
            no_recompile=summary["compiles_after_warm_up"] == 0,
            frame_p95_within_10pct=frame_ratio <= 1.10,
            ttfa_p95_within_10pct=ttfa_ratio <= 1.10,
            enough_blocks=len(blocks) >= 3,
        )
        return summary

    def main(self) -> None:
        args = self.args
        values = node_parameters(args.params)
        workdir = tempfile.mkdtemp(prefix="q3_node_endurance_")
        t0 = time.monotonic()
        if args.model:
            model_dir = args.model
        elif args.tiny:
            from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

            model_dir = write_tiny_checkpoint(os.path.join(workdir, "tiny"), args.kind, seed=args.seed,
                                              model_size=args.size)
        else:
            from bench.full_size_checkpoint import write_full_size_checkpoint

            model_dir = write_full_size_checkpoint(os.path.join(workdir, args.size), size=args.size,
                                                   kind=args.kind, seed=args.seed)
        ref_audio = write_reference_audio(os.path.join(workdir, "reference.wav"))
        values["model"] = str(model_dir)
        # custom_voice starts with the node's default voice; the others need a voice to configure at all.
        first_voice = {}
        if args.kind != "custom_voice":
            first_voice = voice_variants(values, args.kind, args.size, ref_audio, [])[0]
        self.out = dict(
            config=dict(vars(args), model_dir=str(model_dir),
                        gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
                        torch=torch.__version__, python=sys.version.split()[0],
                        node_parameters={k: v for k, v in values.items() if k != "model"},
                        overridden=dict(
                            model="the written random checkpoint",
                            **{"sampling.max_new_tokens": (
                                f"per text: 1 + min({args.max_frames}, 4 + {args.frames_per_word} * words of "
                                "its longest sentence) frames (random weights rarely emit EOS)")}),
                        dynamo_compile_count=self.probe.compile_hook,
                        malloc_arena_max=os.environ.get("MALLOC_ARENA_MAX", ""),
                        cuda_module_loading=os.environ.get("CUDA_MODULE_LOADING", "")),
            checkpoint_written_s=round(time.monotonic() - t0, 1),
            baseline=dict(host_rss_mb=mb(pm.rss_bytes())),
            blocks=[], cycles=[],
        )
        self.emit("config", self.out["config"])
        try:
            self.probe.phase = "lifecycle"
            first = self.configure_activate(dict(values, **first_voice))
            first["after_activate"] = self.on_worker(
                lambda: dict(host_rss_mb=mb(pm.rss_bytes()), **gpu_memory(), graphs=self.probe.graphs(),
                             dynamo=dynamo_state()))
            self.out["first_activation"] = first
            self.emit("first_activation", first)
            self.trace.start()
            self.on_worker(self.probe.count)
            self.captures_at_warm = self.probe.captures["lifecycle"]
            self.compiles_at_warm = self.probe.compiles["lifecycle"]
            self.out["inductor_cache_mb_at_start"] = directory_mb(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
            speakers = self.probe.engine.get_supported_speakers() or [""]
            variants = voice_variants(values, args.kind, args.size, ref_audio, list(speakers))
            self.out["voices"] = variants
            self.speak_blocks(values, variants)
            if args.shape_probe and self.fits(self.shape_probe_s, tail=False):
                self.out["shape_probe"] = self.shape_probe()
                self.emit("shape_probe", self.out["shape_probe"])
        finally:
            self.out["summary"] = self.summary() if self.out["blocks"] else {}
            self.out["inductor_cache_mb_at_end"] = directory_mb(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
            self.out["bad_chunks"] = self.sink.bad_chunks[:20]
            self.out["logged_errors"] = self.sink.errors[:20]
            self.save()
            self.emit("summary", self.out["summary"])
            self.worker.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="0b6", choices=("0b6", "1b7"))
    ap.add_argument("--kind", default="custom_voice", choices=("custom_voice", "base", "voice_design"))
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny random checkpoint (CPU logic check)")
    ap.add_argument("--model", default="", help="an existing model directory instead of a written one")
    ap.add_argument("--params", default=os.path.join(REPO, "config", "tts.yaml"))
    ap.add_argument("--utterances", type=int, default=2000)
    ap.add_argument("--block", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=20, help="most lifecycle cycles")
    ap.add_argument("--cycle-every", type=int, default=200, help="utterances between cycles (0: none)")
    ap.add_argument("--cycle-estimate-s", type=float, default=30.0, help="budget estimate of the first cycle")
    ap.add_argument("--stop-every", type=int, default=10)
    ap.add_argument("--frames-per-word", type=int, default=3)
    ap.add_argument("--max-frames", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=0.0, help="wall seconds for the whole run (0: none)")
    ap.add_argument("--reserve-s", type=float, default=20.0, help="kept free at the end of the budget")
    ap.add_argument("--tracemalloc", type=int, default=0, help="frames per traceback (0: off)")
    ap.add_argument("--malloc-trim", action="store_true")
    ap.add_argument("--no-census", dest="census", action="store_false", help="skip the live-object count")
    ap.add_argument("--shape-probe", type=int, default=0, help="new prompt lengths to prefill at the end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    Run(args).main()


if __name__ == "__main__":
    main()
