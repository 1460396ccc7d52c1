"""The fused CUDA C++ frame (engine/frame/fused_cuda.py) on a GPU: the reference frame's codes under CUDA
graphs (launch-ahead, several frames per replay, a consumer stream) on tiny float64 models of both sizes
(0.6B: Identity projection; 1.7B: the projection's bias epilogue), graph replay == eager, and the sampler
kernel choosing what sampling.choose_token chooses with the same noise. The full-size float32 parity against
qwen-tts and the timings are bench/fused_cuda_check.py's."""

import pytest
import torch
from test_frame_generator import EOS_REQUEST, LONG_REQUEST
from test_fused_frame_gpu import GREEDY, SAMPLED, codes

from bench.gpu_parity import build_model, cast, synthetic_prefill
from qwen3_tts_ros.engine.frame import cuda_build
from qwen3_tts_ros.engine.frame.fused_cuda import FusedCudaFrame
from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.frame.sampling import choose_token, process_scores
from qwen3_tts_ros.engine.types import SamplingParams


@pytest.fixture(scope="module")
def cuda_f64(cuda_custom_voice_tts_f64):
    return cuda_custom_voice_tts_f64


def generator(model, path: str, **options) -> FrameGenerator:
    """path: "fused-cuda", or "eager" (the reference frame: eager layers, under CUDA graphs too)."""
    return FrameGenerator(model, FrameOptions(path=path, **options))


@pytest.mark.gpu
def test_fused_cuda_is_available_and_describes_itself():
    assert FusedCudaFrame.unavailable(torch.device("cuda")) is None
    assert FusedCudaFrame.unavailable(torch.device("cpu")) == "needs a CUDA device (device is cpu)"
    cuda_build.kernels(torch.device("cuda"))  # built (or loaded) once, then cached
    assert cuda_build.built_library(cuda_build.arch_of(torch.device("cuda"))) is not None


@pytest.mark.gpu
@pytest.mark.parametrize("launch_ahead,frames_per_replay", [(1, 1), (2, 2), (3, 4)])
def test_fused_cuda_graphs_give_the_reference_codes(cuda_f64, launch_ahead, frames_per_replay):
    """float64 greedy: integer codes, no tolerance (the kernels' summation order moves a logit by far less
    than the gaps between the top two logits of these runs)."""
    prefills = [build_prefill(cuda_f64.model, cuda_f64.processor, r) for r in (LONG_REQUEST, EOS_REQUEST)]
    options = dict(max_seq_len=256, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay)
    reference = generator(cuda_f64.model, "eager", **options)
    fused = generator(cuda_f64.model, "fused-cuda", **options)
    assert "fused CUDA C++ frame (sm_" in fused.path.describe()
    consumer = torch.cuda.Stream()
    for prefill in prefills + prefills:
        expected, expected_stop = codes(reference, prefill, GREEDY)
        for consumer_stream in (None, consumer):
            got, stopped_by = codes(fused, prefill, GREEDY, consumer_stream)
            assert torch.equal(got, expected) and stopped_by == expected_stop


@pytest.mark.gpu
@pytest.mark.parametrize("size", ["0b6", "1b7"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_cuda_tiny_sizes_follow_the_reference_frame(size, dtype):
    """Both tiny architectures (1.7B: projection with bias; talker hidden != code-predictor hidden), 40
    greedy frames with EOS held off, a prompt long enough for several talker attention splits; graph replay
    == the same path uncaptured. float32 too: integer codes, where a flip would need two logits within a
    few float32 ulps of each other (none in these runs: a tie shows as a failure here, not as a pass)."""
    model = build_model(size, tiny=True, device="cuda").to(dtype)
    base = synthetic_prefill(model, prompt_len=70, text_len=20)
    prefill = cast(base, dtype)
    frames = 40
    sampling = SamplingParams(
        do_sample=False, subtalker_dosample=False, max_new_tokens=frames + 1, min_new_tokens=frames + 1
    )
    expected, _ = codes(generator(model, "eager", max_seq_len=256), prefill, sampling)
    graphs, _ = codes(generator(model, "fused-cuda", max_seq_len=256), prefill, sampling)
    uncaptured = generator(model, "fused-cuda", max_seq_len=256, use_cuda_graphs=False)
    eager, _ = codes(uncaptured, prefill, sampling)
    assert len(expected) == frames
    assert torch.equal(graphs, expected)
    assert torch.equal(eager, graphs)


@pytest.mark.gpu
def test_fused_cuda_sampling_is_seeded_and_valid(cuda_f64):
    prefill = build_prefill(cuda_f64.model, cuda_f64.processor, LONG_REQUEST)
    fused = generator(cuda_f64.model, "fused-cuda", max_seq_len=256)
    torch.manual_seed(3)
    first, _ = codes(fused, prefill, SAMPLED)
    torch.manual_seed(3)
    again, _ = codes(fused, prefill, SAMPLED)
    assert torch.equal(first, again)
    assert int(first.min()) >= 0 and int(first.max()) < 64  # audio codes only: control ids suppressed


SAMPLER_CASES = [
    dict(do_sample=False, temperature=1.0, top_k=0, top_p=1.0),
    dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0),
    dict(do_sample=True, temperature=0.7, top_k=50, top_p=1.0),
    dict(do_sample=True, temperature=0.9, top_k=0, top_p=0.8),
    dict(do_sample=True, temperature=1.3, top_k=20, top_p=0.5),
    dict(do_sample=True, temperature=0.5, top_k=1, top_p=0.9),
]


@pytest.mark.gpu
# (talker, vocab): the talker's suppression keeps ids below vocab - 1024 (and EOS), so its vocabularies are
# the real 3072 and a 2048 that leaves 1024 ids; the code predictor's 2048 and a tiny model's 64.
@pytest.mark.parametrize("talker,vocab", [(False, 64), (False, 2048), (True, 2048), (True, 3072)])
def test_sampler_kernel_chooses_what_choose_token_chooses(talker, vocab):
    """The one-kernel sampler against sampling.py's functions with the same Exp(1) noise: the same token
    for every case and 20 draws each (a top-p cut landing within float32 rounding of a cumulative sum would
    differ: a measure-zero case for these random logits), and the talker's counters updated."""
    from qwen3_tts_ros.engine.frame.sampling import TalkerSampler, Warper

    device = torch.device("cuda")
    ops = cuda_build.kernels(device)
    rng = torch.Generator(device=device).manual_seed(vocab + talker)
    sampler = TalkerSampler(vocab, eos_token_id=vocab - 1024 + 102, device=device)
    step = torch.zeros(1, device=device, dtype=torch.long)
    code = torch.zeros(1, device=device, dtype=torch.long)
    model_row = torch.zeros(1, 8, device=device, dtype=torch.bfloat16)
    for case in SAMPLER_CASES:
        warper = sampler.warper if talker else Warper(vocab, device)
        warper.set(**case)
        sampler.penalty.set(1.3)
        sampler.penalty_factor.fill_(1.3)
        sampler.min_new_tokens.fill_(3)
        sampler.reset()
        for draw in range(20):
            logits = torch.randn(vocab, device=device, generator=rng) * 3
            noise = torch.empty(vocab, device=device).exponential_(1, generator=rng)
            scores = logits[None]
            if talker:
                s = sampler
                scores = process_scores(
                    scores, s.seen, s.penalty_factor, s.penalty.value, s.penalty.reciprocal, s.eos_mask,
                    s.generated, s.min_new_tokens, s.suppress_mask,
                )  # fmt: skip
            t = warper.temperature
            expected = choose_token(
                scores,
                warper.do_sample,
                t.value,
                t.reciprocal,
                warper.top_k,
                warper.one_minus_top_p,
                noise[None],
            )
            generated = int(sampler.generated)
            process = [
                sampler.seen.view(torch.uint8), sampler.eos_mask.view(torch.uint8),
                sampler.suppress_mask.view(torch.uint8), sampler.penalty_factor, sampler.penalty.reciprocal,
                sampler.generated, sampler.min_new_tokens, step,
            ] if talker else []  # fmt: skip
            ops.sample(
                logits, noise, code, warper.do_sample.view(torch.uint8), t.reciprocal, warper.top_k,
                warper.one_minus_top_p, process, [], model_row,
            )  # fmt: skip
            assert int(code) == int(expected), (case, draw)
            if talker:
                assert bool(sampler.seen[0, int(code)]) and int(sampler.generated) == generated + 1
