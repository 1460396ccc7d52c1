"""FrameGenerator behaviour: stop conditions, stats, cancel, limits, sampling reproducibility."""

import threading
from dataclasses import replace

import pytest
import torch

from qwen3_tts_ros.engine.frame.generator import FrameGenerator
from qwen3_tts_ros.engine.frame.options import FrameOptions
from qwen3_tts_ros.engine.frame.prefill import build_prefill
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest, StreamStats

GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=30)


# Greedy on the tiny custom-voice model (CPU): no EOS within 50 frames (so max_new_tokens ends it).
LONG_REQUEST = SpeechRequest(
    text="Short one.",
    mode="custom_voice",
    language="Auto",
    speaker="ryan",
    instruct="Speak with excitement.",
    non_streaming_mode=False,
)
# Greedy on the tiny custom-voice model (CPU): EOS after 8 frames (test_codes_parity.py).
EOS_REQUEST = SpeechRequest(
    text="Hello world, this is a test.", mode="custom_voice", language="english", speaker="vivian"
)


@pytest.fixture(scope="module")
def setup(tiny_custom_voice_tts):
    tts = tiny_custom_voice_tts
    return tts, build_prefill(tts.model, tts.processor, LONG_REQUEST)


def run(generator, prefill, sampling, **kw):
    stats = StreamStats()
    frames = list(generator.generate(prefill, sampling, stats=stats, **kw))
    return frames, stats


def test_frames_and_stats(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=256))
    assert generator.capture() == 0.0  # CPU: eager
    frames, stats = run(generator, prefill, GREEDY)
    assert len(frames) == GREEDY.max_new_tokens - 1 and stats.stopped_by == "max_new_tokens"
    assert stats.frames == len(frames) == len(stats.frame_ms) and stats.prefill_ms > 0
    for f in frames:
        assert f.shape == (16,) and f.dtype == torch.int64
        assert int(f.max()) < 64 and int(f.min()) >= 0  # audio codes only
    # A second run on the same generator (caches reused) gives the same codes.
    again, _ = run(generator, prefill, GREEDY)
    assert all(torch.equal(a, b) for a, b in zip(frames, again))


def test_max_new_tokens_one_gives_no_frame(setup):
    tts, prefill = setup
    frames, stats = run(
        FrameGenerator(tts.model, FrameOptions(max_seq_len=256)),
        prefill,
        SamplingParams(do_sample=False, max_new_tokens=1),
    )
    assert frames == [] and stats.stopped_by == "max_new_tokens"


def test_max_seq_len(setup):
    tts, prefill = setup
    prompt_len = prefill.inputs_embeds.shape[1]
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=prompt_len + 5))
    frames, stats = run(generator, prefill, GREEDY)
    assert stats.stopped_by == "max_seq_len" and len(frames) == 6  # positions prompt_len..+4 feed frames 2..6
    full, _ = run(FrameGenerator(tts.model, FrameOptions(max_seq_len=256)), prefill, GREEDY)
    assert all(torch.equal(a, b) for a, b in zip(frames, full))
    with pytest.raises(ValueError, match="max_seq_len"):
        FrameGenerator(tts.model, FrameOptions(max_seq_len=prompt_len - 1)).generate(prefill, GREEDY)


def test_cancel(setup):
    tts, prefill = setup
    cancel = threading.Event()
    stats = StreamStats()
    frames = []
    for frame in FrameGenerator(tts.model, FrameOptions(max_seq_len=256)).generate(
        prefill, GREEDY, cancel=cancel, stats=stats
    ):
        frames.append(frame)
        if len(frames) == 3:
            cancel.set()
    assert len(frames) == 3 and stats.stopped_by == "cancelled"


def test_one_stream_at_a_time(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=256))
    first = generator.generate(prefill, GREEDY)
    next(first)
    with pytest.raises(RuntimeError, match="already generating"):
        next(generator.generate(prefill, GREEDY))
    first.close()
    assert len(list(generator.generate(prefill, SamplingParams(do_sample=False, max_new_tokens=3)))) == 2


def test_sampling_seeded(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=256))
    sampling = SamplingParams(max_new_tokens=30)  # qwen-tts defaults: sampling on, top-k 50, T 0.9
    torch.manual_seed(3)
    a, _ = run(generator, prefill, sampling)
    torch.manual_seed(3)
    b, _ = run(generator, prefill, sampling)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    greedy, _ = run(generator, prefill, GREEDY)
    assert any(not torch.equal(x, y) for x, y in zip(a, greedy))


def test_talker_prefill_matches_module(tiny_custom_voice_tts_f64):
    """Our static-cache talker forward equals the qwen-tts talker model's forward on a prompt. In float64:
    the two differ only in how sums are grouped (fused projections, our attention), so they agree to float64
    rounding (~1e-16 relative per operation); 1e-10 is far above that and far below any real difference."""
    tts = tiny_custom_voice_tts_f64
    prefill = build_prefill(tts.model, tts.processor, LONG_REQUEST)
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=256))
    with torch.no_grad():
        ours, _ = generator.state.talker.prefill(prefill.inputs_embeds)
        ref = tts.model.talker.model(inputs_embeds=prefill.inputs_embeds, use_cache=False).last_hidden_state
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref[:, -1:], rtol=1e-10, atol=1e-10)


# -- launch-ahead, several frames per replay, prefill buckets (the CUDA path's logic, run eagerly) ----------
GREEDY_32 = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=32)
PIPELINES = [(3, 1), (2, 3), (1, 4), (4, 2)]  # (launch_ahead, frames_per_replay)


@pytest.fixture(scope="module")
def eos_prefill(setup):
    tts, _ = setup
    return build_prefill(tts.model, tts.processor, EOS_REQUEST)


@pytest.mark.usefixtures("torch_single_thread")
@pytest.mark.parametrize("launch_ahead,frames_per_replay", PIPELINES)
def test_pipelined_frames_equal_one_by_one(setup, eos_prefill, launch_ahead, frames_per_replay):
    """Frames launched ahead / several per replay: the same frames and stop reasons as one at a time, frames
    past EOS never handed out, and nothing they computed leaks into the next utterance."""
    tts, prefill = setup
    prompt_len = prefill.inputs_embeds.shape[1]
    plain = FrameGenerator(tts.model, FrameOptions(max_seq_len=prompt_len + 9))
    piped = FrameGenerator(
        tts.model,
        FrameOptions(
            max_seq_len=prompt_len + 9, launch_ahead=launch_ahead, frames_per_replay=frames_per_replay
        ),
    )
    cases = [
        (eos_prefill, GREEDY_32, "eos"),
        (prefill, replace(GREEDY_32, max_new_tokens=7), "max_new_tokens"),
        (prefill, GREEDY, "max_seq_len"),  # 10 frames fit
        (eos_prefill, GREEDY_32, "eos"),
    ]
    for case_prefill, sampling, stopped_by in cases:
        expected, expected_stats = run(plain, case_prefill, sampling)
        got, stats = run(piped, case_prefill, sampling)
        assert expected_stats.stopped_by == stats.stopped_by == stopped_by
        assert len(got) == len(expected) == stats.frames == len(stats.frame_ms)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
        assert all(int(f[0]) != piped.state.eos_token_id for f in got)
    assert len(run(plain, eos_prefill, GREEDY_32)[0]) == 8


@pytest.mark.usefixtures("torch_single_thread")
def test_pipelined_cancel_and_close(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, FrameOptions(max_seq_len=256, launch_ahead=3, frames_per_replay=2))
    expected, _ = run(FrameGenerator(tts.model, FrameOptions(max_seq_len=256)), prefill, GREEDY)
    cancel = threading.Event()
    stats = StreamStats()
    frames = []
    for frame in generator.generate(prefill, GREEDY, cancel=cancel, stats=stats):
        frames.append(frame)
        if len(frames) == 3:
            cancel.set()
    assert len(frames) == 3 and stats.stopped_by == "cancelled"
    assert all(torch.equal(a, b) for a, b in zip(frames, expected))
    # Closed mid-replay (frame 2 of 2 not taken): the frames handed out stay valid, the generator is free.
    stream = generator.generate(prefill, GREEDY)
    first = next(stream)
    stream.close()
    assert torch.equal(first, expected[0])
    again, stats = run(generator, prefill, GREEDY)
    assert stats.stopped_by == "max_new_tokens" and all(torch.equal(a, b) for a, b in zip(again, expected))


@pytest.mark.usefixtures("torch_single_thread")
def test_prefill_buckets(setup):
    """Prompts padded to a bucket give the unpadded prompt's frames (masked padding; the K/V it writes
    past P is overwritten before it is read); stale longer prompts in the bucket do not matter; a prompt
    that fits no bucket runs unpadded."""
    tts, prefill = setup
    short = SpeechRequest(text="Hi.", mode="custom_voice", language="english", speaker="vivian")
    short_prefill = build_prefill(tts.model, tts.processor, short)
    long_len, short_len = prefill.inputs_embeds.shape[1], short_prefill.inputs_embeds.shape[1]
    assert short_len < long_len
    sampling = GREEDY_32
    plain = FrameGenerator(tts.model, FrameOptions(max_seq_len=256))
    bucketed = FrameGenerator(
        tts.model, FrameOptions(max_seq_len=256, prefill_buckets=(short_len - 1, long_len + 3))
    )
    for case_prefill in (prefill, short_prefill, prefill):  # the short prompt runs over the long one's rows
        expected, expected_stats = run(plain, case_prefill, sampling)
        got, stats = run(bucketed, case_prefill, sampling)
        assert stats.stopped_by == expected_stats.stopped_by
        assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))
    too_long = FrameGenerator(tts.model, FrameOptions(max_seq_len=256, prefill_buckets=(short_len - 1,)))
    got, _ = run(too_long, short_prefill, sampling)
    assert all(torch.equal(a, b) for a, b in zip(got, run(plain, short_prefill, sampling)[0]))


def test_pipeline_settings_checked(setup):
    tts, _ = setup
    with pytest.raises(ValueError, match="launch_ahead"):
        FrameGenerator(tts.model, FrameOptions(max_seq_len=64, launch_ahead=0))
    with pytest.raises(ValueError, match="frames_per_replay"):
        FrameGenerator(tts.model, FrameOptions(max_seq_len=64, frames_per_replay=0))
    with pytest.raises(ValueError, match="prefill_buckets"):
        FrameGenerator(tts.model, FrameOptions(max_seq_len=64, prefill_buckets=(32, 128)))
    on_cpu = FrameGenerator(tts.model, FrameOptions(max_seq_len=64))
    assert on_cpu.launch_ahead == 1  # CPU: nothing to overlap

