"""The fused Triton frame on CUDA: the reference frame's codes under CUDA graphs, launch-ahead and several
frames per replay, on a consumer stream, and captures that follow dropped generators (the full-size float32
parity against qwen-tts is test_gpu_parity.py's)."""

import gc

import pytest
import torch
from test_frame_generator import EOS_REQUEST, LONG_REQUEST

from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SamplingParams, StreamStats

GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=30)
SAMPLED = SamplingParams(max_new_tokens=30, top_k=20, top_p=0.8, subtalker_top_p=0.9)


@pytest.fixture(scope="module")
def cuda_f64(cuda_custom_voice_tts_f64):
    return cuda_custom_voice_tts_f64


def codes(generator, prefill, sampling, consumer=None):
    stats = StreamStats()
    frames = list(generator.generate(prefill, sampling, stats=stats, consumer_stream=consumer))
    torch.cuda.synchronize()
    return torch.stack(frames).cpu() if frames else torch.zeros(0, 16, dtype=torch.long), stats.stopped_by


@pytest.mark.gpu
@pytest.mark.parametrize("launch_ahead,frames_per_replay", [(1, 1), (2, 2), (3, 4)])
def test_fused_graphs_give_the_reference_codes(cuda_f64, launch_ahead, frames_per_replay):
    """float64 greedy: integer codes, no tolerance (the kernels' summation order moves a logit by far less
    than the gaps between the top two logits of these runs)."""
    prefills = [build_prefill(cuda_f64.model, cuda_f64.processor, r) for r in (LONG_REQUEST, EOS_REQUEST)]
    options = dict(max_seq_len=256, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay)
    reference = FrameGenerator(cuda_f64.model, FrameOptions(**options))
    fused = FrameGenerator(cuda_f64.model, FrameOptions(path="fused-triton", **options))
    consumer = torch.cuda.Stream()
    for prefill in prefills + prefills:
        expected, expected_stop = codes(reference, prefill, GREEDY)
        for consumer_stream in (None, consumer):
            got, stopped_by = codes(fused, prefill, GREEDY, consumer_stream)
            assert torch.equal(got, expected) and stopped_by == expected_stop


@pytest.mark.gpu
def test_fused_sampling_is_seeded_and_valid(cuda_f64):
    prefill = build_prefill(cuda_f64.model, cuda_f64.processor, LONG_REQUEST)
    generator = FrameGenerator(cuda_f64.model, FrameOptions(max_seq_len=256, path="fused-triton"))
    torch.manual_seed(3)
    first, _ = codes(generator, prefill, SAMPLED)
    torch.manual_seed(3)
    again, _ = codes(generator, prefill, SAMPLED)
    assert torch.equal(first, again)
    assert int(first.min()) >= 0 and int(first.max()) < 64  # audio codes only: control ids suppressed


@pytest.mark.gpu
def test_captures_after_dropped_generators(cuda_f64):
    """Generators dropped while garbage is pending, then a new capture: the capture must not be invalidated
    by a collection freeing CUDA graphs or memory inside it (a failure seen in the GPU suite)."""
    prefill = build_prefill(cuda_f64.model, cuda_f64.processor, EOS_REQUEST)
    expected = None
    for _ in range(4):
        generator = FrameGenerator(
            cuda_f64.model, FrameOptions(max_seq_len=256, frames_per_replay=2, path="fused-triton")
        )
        garbage = [generator]
        garbage.append(garbage)  # a cycle: only the cyclic GC frees it
        got = codes(generator, prefill, GREEDY)
        expected = expected or got
        assert torch.equal(got[0], expected[0])
        del generator, garbage
    gc.collect()
