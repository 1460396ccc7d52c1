"""All three model kinds through the API on CUDA graphs (tiny checkpoints, float64, so that streamed vs whole
audio is compared for exactness: waveform_bounds.py, rule 1): waveforms equal qwen-tts's on the same device,
streaming (also with the producer thread replaying the graphs) matches, capture once, warm-up, and close()
releasing the model and the graphs.

The gpu tests skip without CUDA; `_check_engine` runs the same checks on any device (also on CPU below, so
the test logic itself runs in CI).
"""

import gc
import weakref

import numpy as np
import pytest
import torch
from waveform_bounds import assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs

GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=12)
TEXT = "Hello from the graphs."


def _generate(target, kind, reference_audio):
    if kind == "custom_voice":
        return target.generate_custom_voice(TEXT, "vivian", "english", **GREEDY)[0][0]
    if kind == "voice_design":
        return target.generate_voice_design(TEXT, "A calm voice.", "english", **GREEDY)[0][0]
    return target.generate_voice_clone(TEXT, "english", reference_audio, "Reference words.", **GREEDY)[0][0]


def _stream(engine, kind, reference_audio, **stream_kwargs):
    if kind == "custom_voice":
        stream = engine.stream_custom_voice(TEXT, "vivian", "english", **stream_kwargs, **GREEDY)
    elif kind == "voice_design":
        stream = engine.stream_voice_design(TEXT, "A calm voice.", "english", **stream_kwargs, **GREEDY)
    else:
        stream = engine.stream_voice_clone(
            TEXT, "english", reference_audio, "Reference words.", **stream_kwargs, **GREEDY
        )
    chunks = list(stream)
    assert chunks[-1].is_final and all(len(c.pcm) == c.frame_count * 1920 for c in chunks)
    return np.concatenate([c.pcm for c in chunks]), stream.stats


def _check_engine(model_dir, kind, device, reference_audio):
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        model_dir, device=device, dtype=torch.float64, max_seq_len=256
    )
    first = engine.capture()
    assert engine.capture() == 0.0  # captured once
    if device == "cuda":
        assert first > 0.0
    ours = _generate(engine, kind, reference_audio)
    theirs = _generate(engine.tts, kind, reference_audio)  # qwen-tts on the very same weights and device
    assert len(ours) > 0
    np.testing.assert_array_equal(ours, theirs)

    streamed, stats = _stream(engine, kind, reference_audio, pcm_format="float32", first_chunk_frames=1)
    assert streamed.shape == ours.shape and stats.frames * 1920 == len(ours)
    assert_same_audio(streamed, ours, f"{kind} on {device}: streamed vs whole")
    # Production on a background thread (graph replays there) gives the very same audio.
    prefetched, _ = _stream(engine, kind, reference_audio, pcm_format="float32", prefetch_chunks=2)
    np.testing.assert_array_equal(prefetched, streamed)

    assert engine.warmup() > 0.0
    model, frame_generator = weakref.ref(engine.model), weakref.ref(engine.frame_generator)
    codec = weakref.ref(engine.codec)
    engine.close()  # releases the model and the graphs: nothing else keeps them alive
    gc.collect()
    assert model() is None and frame_generator() is None and codec() is None


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["custom_voice", "voice_design", "base"])
@pytest.mark.usefixtures("no_tf32")
def test_cuda_graphs_api(kind, tiny_custom_voice_dir, tiny_voice_design_dir, tiny_base_dir, reference_audio):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    dirs = dict(custom_voice=tiny_custom_voice_dir, voice_design=tiny_voice_design_dir, base=tiny_base_dir)
    _check_engine(dirs[kind], kind, "cuda", reference_audio)


@pytest.mark.usefixtures("torch_single_thread")
def test_same_checks_on_cpu(tiny_custom_voice_dir, reference_audio):
    _check_engine(tiny_custom_voice_dir, "custom_voice", "cpu", reference_audio)
