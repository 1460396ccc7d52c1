"""The engine API on CUDA with captured graphs (tiny checkpoints; skipped without CUDA)."""

import threading

import numpy as np
import pytest
import torch
from waveform_bounds import assert_same_audio

from qwen3_tts_ros.engine import Qwen3TTSCudaGraphs
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME

pytestmark = pytest.mark.gpu
GREEDY = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=16)
TEXT = "Hello world, this runs on the GPU."


@pytest.fixture(scope="module")
def cuda_engine(tiny_custom_voice_dir):
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        tiny_custom_voice_dir, device="cuda", dtype=torch.float32, max_seq_len=256
    )
    assert engine.capture() > 0  # graphs captured once
    yield engine
    engine.close()


def test_cuda_graph_waveforms_equal_qwen_tts(cuda_engine):
    ours, _ = cuda_engine.generate_custom_voice(TEXT, "vivian", "english", **GREEDY)
    theirs, _ = cuda_engine.tts.generate_custom_voice(TEXT, "vivian", "english", **GREEDY)
    assert ours[0].shape == theirs[0].shape
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_cuda_stream_chunks_and_cancel(tiny_custom_voice_dir):
    # float64: streamed vs whole audio of the same codes is compared for exactness (waveform_bounds.py)
    engine = Qwen3TTSCudaGraphs.from_pretrained(
        tiny_custom_voice_dir, device="cuda", dtype=torch.float64, max_seq_len=256
    )
    (request,) = engine.custom_voice_requests(TEXT, "vivian", "english", **GREEDY)
    full = engine.synthesize(request)
    chunks = list(engine.stream(request, first_chunk_frames=1, chunk_frames=4, pcm_format="float32"))
    assert chunks[-1].is_final
    assert all(len(c.pcm) == c.frame_count * SAMPLES_PER_FRAME for c in chunks)
    assert_same_audio(np.concatenate([c.pcm for c in chunks]), full, "CUDA streamed vs whole")
    cancel = threading.Event()
    got = []
    for chunk in engine.stream(request, cancel=cancel, prefetch_chunks=2):
        got.append(chunk)
        cancel.set()
    assert got[-1].is_final and sum(c.frame_count for c in got) < len(full) // SAMPLES_PER_FRAME
    engine.close()


def test_bfloat16_stream(tiny_voice_design_dir):
    engine = Qwen3TTSCudaGraphs.from_pretrained(tiny_voice_design_dir, device="cuda", max_seq_len=256)
    assert engine.dtype == torch.bfloat16
    engine.warmup()
    chunks = list(engine.stream_voice_design("Short test.", "Calm.", max_new_tokens=10))
    assert chunks[-1].is_final and chunks[0].pcm.dtype == np.int16
    assert sum(len(c.pcm) for c in chunks) == sum(c.frame_count for c in chunks) * SAMPLES_PER_FRAME
    engine.close()
