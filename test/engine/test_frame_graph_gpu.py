"""The one-graph-per-frame decode on CUDA (skipped without CUDA): graph replay == our eager path token for
token (float32, greedy) on a tiny and a full-size random model, for every launch-ahead / frames-per-replay
setting; frames past EOS are never handed out and leave nothing behind; cancel; sampling is reproducible;
timing stats come from CUDA events. test_frame_generator.py runs the same logic eagerly on CPU.
"""

import importlib.util
import pathlib
import threading

import pytest
import torch
from test_frame_generator import EOS_REQUEST, LONG_REQUEST  # the same two utterances as on CPU

from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import SUGGESTED_PREFILL_BUCKETS, FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats

pytestmark = pytest.mark.gpu
GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=32)
PIPELINES = [(1, 1), (2, 1), (4, 1), (2, 2), (3, 4)]  # (launch_ahead, frames_per_replay)


def run(generator, prefill, sampling, **kw):
    stats = StreamStats()
    frames = list(generator.generate(prefill, sampling, stats=stats, **kw))
    return (torch.stack(frames).cpu() if frames else torch.zeros(0, 16, dtype=torch.long)), stats


@pytest.fixture(scope="module")
def cuda_tiny():
    """The tiny custom-voice model on CUDA in float32, with the two prefills."""
    import tempfile

    from qwen_tts import Qwen3TTSModel

    from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import write_tiny_checkpoint

    path = write_tiny_checkpoint(pathlib.Path(tempfile.mkdtemp()), "custom_voice", seed=1)
    tts = Qwen3TTSModel.from_pretrained(str(path), dtype=torch.float32, device_map="cuda")
    prefills = {
        "eos": build_prefill(tts.model, tts.processor, EOS_REQUEST),
        "long": build_prefill(tts.model, tts.processor, LONG_REQUEST),
    }
    yield tts.model, prefills
    del tts
    torch.cuda.empty_cache()


@pytest.mark.parametrize("launch_ahead,frames_per_replay", PIPELINES)
def test_tiny_graph_equals_eager(cuda_tiny, launch_ahead, frames_per_replay):
    model, prefills = cuda_tiny
    prompt_len = prefills["long"].inputs_embeds.shape[1]
    max_seq_len = prompt_len + 20  # "long" can reach max_seq_len (21 frames); "eos" ends by EOS on CPU
    eager = FrameGenerator(model, FrameOptions(max_seq_len=max_seq_len, use_cuda_graphs=False))
    graphs = FrameGenerator(
        model,
        FrameOptions(max_seq_len=max_seq_len, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay),
    )
    assert graphs.capture() > 0 and graphs.capture() == 0.0
    for name in ("eos", "long", "eos", "long"):  # twice: the second runs after frames past a stop
        expected, expected_stats = run(eager, prefills[name], GREEDY)
        got, stats = run(graphs, prefills[name], GREEDY)
        print(name, launch_ahead, frames_per_replay, stats.stopped_by, len(got), stats.frame_ms[:3])
        assert stats.stopped_by == expected_stats.stopped_by, name
        assert got.shape == expected.shape and torch.equal(got, expected), name
        assert not (got[:, 0] == graphs.eos_token_id).any()  # the EOS frame is never handed out
        assert stats.frames == len(got) == len(stats.frame_ms)
        assert stats.prefill_ms > 0 and all(ms > 0 for ms in stats.frame_ms)


def test_tiny_eos_discards_frames_launched_past_it(cuda_tiny):
    """With 4 replays of 4 frames in flight the EOS frame is found among frames launched well ahead."""
    model, prefills = cuda_tiny
    eager = FrameGenerator(model, FrameOptions(max_seq_len=256, use_cuda_graphs=False))
    expected, expected_stats = run(eager, prefills["eos"], GREEDY)
    if expected_stats.stopped_by != "eos":
        pytest.skip(f"no EOS within {GREEDY.max_new_tokens} frames on this GPU's eager path")
    generator = FrameGenerator(model, FrameOptions(max_seq_len=256, launch_ahead=4, frames_per_replay=4))
    got, stats = run(generator, prefills["eos"], GREEDY)
    assert stats.stopped_by == "eos" and torch.equal(got, expected)
    # The frames computed past EOS do not leak into the next utterance.
    after, _ = run(generator, prefills["long"], GREEDY)
    fresh, _ = run(eager, prefills["long"], GREEDY)
    assert torch.equal(after, fresh)


def test_tiny_cancel_and_close(cuda_tiny):
    model, prefills = cuda_tiny
    generator = FrameGenerator(model, FrameOptions(max_seq_len=256, launch_ahead=4))
    expected, _ = run(generator, prefills["long"], GREEDY)
    cancel = threading.Event()
    stats = StreamStats()
    frames = []
    for frame in generator.generate(prefills["long"], GREEDY, cancel=cancel, stats=stats):
        frames.append(frame)
        if len(frames) == 3:
            cancel.set()
    assert len(frames) == 3 and stats.stopped_by == "cancelled"
    assert torch.equal(torch.stack(frames).cpu(), expected[:3])
    stream = generator.generate(prefills["long"], GREEDY)
    first = next(stream)
    stream.close()  # 3 frames still in flight: close waits for them, the generator is free again
    assert torch.equal(first.cpu(), expected[0])
    assert torch.equal(run(generator, prefills["long"], GREEDY)[0], expected)


def test_tiny_sampling_reproducible(cuda_tiny):
    model, prefills = cuda_tiny
    generator = FrameGenerator(model, FrameOptions(max_seq_len=256, launch_ahead=2))
    sampling = SamplingParams(max_new_tokens=30)  # qwen-tts defaults: sampling on, top-k 50, T 0.9
    torch.manual_seed(3)
    a, _ = run(generator, prefills["long"], sampling)
    torch.manual_seed(3)
    b, _ = run(generator, prefills["long"], sampling)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(generator, prefills["long"], GREEDY)[0][: len(a)])


def test_tiny_prefill_buckets_graph_equals_eager(cuda_tiny):
    """Padded prefills replayed from their captured graphs == the same padded prefills run eagerly. Whether
    padded equals unpadded on the GPU (the matmuls of another size may round differently) is printed here
    and reported by bench/framegraph_smoke.py; on CPU test_frame_generator.py asserts it."""
    model, prefills = cuda_tiny
    buckets = dict(prefill_buckets=SUGGESTED_PREFILL_BUCKETS[:3])
    eager = FrameGenerator(model, FrameOptions(max_seq_len=256, use_cuda_graphs=False, **buckets))
    graphs = FrameGenerator(model, FrameOptions(max_seq_len=256, **buckets))
    plain = FrameGenerator(model, FrameOptions(max_seq_len=256))
    assert graphs.capture() > 0
    for name in ("long", "eos", "long"):  # later prompts run over earlier ones' rows in the bucket
        expected, _ = run(eager, prefills[name], GREEDY)
        got, stats = run(graphs, prefills[name], GREEDY)
        assert torch.equal(got, expected), name
        assert stats.prefill_ms > 0
        print(name, "padded == unpadded:", torch.equal(got, run(plain, prefills[name], GREEDY)[0]))


def _gpu_parity_bench():
    script = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu_parity.py"
    spec = importlib.util.spec_from_file_location("gpu_parity", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts the repository root on sys.path for its own imports
    return module


def test_full_size_graph_equals_eager():
    """Released 0.6B architecture, random weights, float32 greedy, EOS kept out: 40 frames."""
    bench = _gpu_parity_bench()
    model = bench.build_model("0b6", tiny=False, device="cuda")
    prefill = bench.synthetic_prefill(model, prompt_len=60, text_len=20)
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=41, min_new_tokens=41
    )
    eager = FrameGenerator(model, FrameOptions(max_seq_len=256, use_cuda_graphs=False))
    expected, _ = run(eager, prefill, sampling)
    assert expected.shape == (40, 16)
    for launch_ahead, frames_per_replay in [(1, 1), (3, 1), (2, 2)]:
        generator = FrameGenerator(
            model,
            FrameOptions(max_seq_len=256, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay),
        )
        got, stats = run(generator, prefill, sampling)
        median_ms = sorted(stats.frame_ms)[len(stats.frame_ms) // 2]
        print(launch_ahead, frames_per_replay, f"median {median_ms:.3f} ms/frame", stats.prefill_ms)
        assert stats.stopped_by == "max_new_tokens"
        assert torch.equal(got, expected), (launch_ahead, frames_per_replay)
        del generator
    del model
    torch.cuda.empty_cache()


def test_tiny_uncompiled_graph_equals_eager(cuda_tiny):
    """Without torch.compile (e.g. no Triton on the device): graph replay == the uncompiled eager path."""
    model, prefills = cuda_tiny
    eager = FrameGenerator(model, FrameOptions(max_seq_len=256, use_cuda_graphs=False, path="eager"))
    graphs = FrameGenerator(model, FrameOptions(max_seq_len=256, launch_ahead=2, path="eager"))
    for name in ("long", "eos"):
        expected, _ = run(eager, prefills[name], GREEDY)
        got, _ = run(graphs, prefills[name], GREEDY)
        assert torch.equal(got, expected), name
