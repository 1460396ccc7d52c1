"""FrameGenerator behaviour: stop conditions, stats, cancel, limits, sampling reproducibility."""

import threading

import pytest
import torch

from qwen3_tts_ros.engine.frame_generator import FrameGenerator
from qwen3_tts_ros.engine.prefill import build_prefill
from qwen3_tts_ros.engine.types import SamplingParams, SpeechRequest, StreamStats

GREEDY = SamplingParams(do_sample=False, subtalker_dosample=False, max_new_tokens=30)


@pytest.fixture(scope="module")
def setup(tiny_custom_voice_tts):
    tts = tiny_custom_voice_tts
    # greedy on the tiny custom-voice model: no EOS within 50 frames (so max_new_tokens ends it)
    request = SpeechRequest(
        text="Short one.",
        mode="custom_voice",
        language="Auto",
        speaker="ryan",
        instruct="Speak with excitement.",
        non_streaming_mode=False,
    )
    return tts, build_prefill(tts.model, tts.processor, request)


def run(generator, prefill, sampling, **kw):
    stats = StreamStats()
    frames = list(generator.generate(prefill, sampling, stats=stats, **kw))
    return frames, stats


def test_frames_and_stats(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, max_seq_len=256)
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
        FrameGenerator(tts.model, max_seq_len=256), prefill, SamplingParams(do_sample=False, max_new_tokens=1)
    )
    assert frames == [] and stats.stopped_by == "max_new_tokens"


def test_max_seq_len(setup):
    tts, prefill = setup
    prompt_len = prefill.inputs_embeds.shape[1]
    generator = FrameGenerator(tts.model, max_seq_len=prompt_len + 5)
    frames, stats = run(generator, prefill, GREEDY)
    assert stats.stopped_by == "max_seq_len" and len(frames) == 6  # positions prompt_len..+4 feed frames 2..6
    full, _ = run(FrameGenerator(tts.model, max_seq_len=256), prefill, GREEDY)
    assert all(torch.equal(a, b) for a, b in zip(frames, full))
    with pytest.raises(ValueError, match="max_seq_len"):
        FrameGenerator(tts.model, max_seq_len=prompt_len - 1).generate(prefill, GREEDY)


def test_cancel(setup):
    tts, prefill = setup
    cancel = threading.Event()
    stats = StreamStats()
    frames = []
    for frame in FrameGenerator(tts.model, max_seq_len=256).generate(
        prefill, GREEDY, cancel=cancel, stats=stats
    ):
        frames.append(frame)
        if len(frames) == 3:
            cancel.set()
    assert len(frames) == 3 and stats.stopped_by == "cancelled"


def test_one_stream_at_a_time(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, max_seq_len=256)
    first = generator.generate(prefill, GREEDY)
    next(first)
    with pytest.raises(RuntimeError, match="already generating"):
        next(generator.generate(prefill, GREEDY))
    first.close()
    assert len(list(generator.generate(prefill, SamplingParams(do_sample=False, max_new_tokens=3)))) == 2


def test_sampling_seeded(setup):
    tts, prefill = setup
    generator = FrameGenerator(tts.model, max_seq_len=256)
    sampling = SamplingParams(max_new_tokens=30)  # qwen-tts defaults: sampling on, top-k 50, T 0.9
    torch.manual_seed(3)
    a, _ = run(generator, prefill, sampling)
    torch.manual_seed(3)
    b, _ = run(generator, prefill, sampling)
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    greedy, _ = run(generator, prefill, GREEDY)
    assert any(not torch.equal(x, y) for x, y in zip(a, greedy))


def test_talker_prefill_matches_module(setup):
    """Our static-cache talker forward equals the qwen-tts talker model's forward on a prompt."""
    tts, prefill = setup
    generator = FrameGenerator(tts.model, max_seq_len=256)
    with torch.no_grad():
        ours, _ = generator.talker.prefill(prefill.inputs_embeds)
        ref = tts.model.talker.model(inputs_embeds=prefill.inputs_embeds, use_cache=False).last_hidden_state
    torch.testing.assert_close(ours, ref[:, -1:], rtol=1e-5, atol=1e-5)
