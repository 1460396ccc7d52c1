"""Streaming codec decode on CUDA: graph-replayed chunks == eager chunks == qwen-tts's decode (gpu-marked).

The released codec architecture with random audio-range weights (waveform std ~0.2), 120 frames after a
30-frame voice-clone prefix (so the 72-frame attention window slides), chunks of 1 then 4 (graph sizes
replayed as they are) and of 3 then 7 (replayed as 2+1 and 4+2+1). Compared by waveform_bounds.py:
  - float64: graphs, eager and qwen-tts's chunked_decode of prefix ++ codes are equal (rule 1);
  - float32 (TF32 off) and bfloat16: graphs and eager streams are each as close to the float64 decode as
    qwen-tts's own decode in that precision is (rule 2).
"""

import copy

import numpy as np
import pytest
import torch
from waveform_bounds import assert_as_accurate, assert_same_audio

from qwen3_tts_ros.engine.audio.causal_codec import CausalCodecDecoder
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME

pytestmark = pytest.mark.gpu
PREFIX, FRAMES = 30, 120
CHUNKINGS = ([1, 4], [3, 7])


@pytest.fixture(scope="module")
def float32_decoder():
    return random_speech_decoder("released", seed=0).to("cuda")


@pytest.fixture(scope="module")
def codes(float32_decoder):
    size = float32_decoder.config.codebook_size
    return torch.randint(0, size, (PREFIX + FRAMES, 16), generator=torch.Generator().manual_seed(0)).cuda()


def full_decode(decoder, codes):
    """qwen-tts's decode of prefix ++ generated (valid codes), the generated part's samples."""
    with torch.inference_mode():
        wav = decoder.chunked_decode(codes.T[None])[0, 0]
    return wav[PREFIX * SAMPLES_PER_FRAME :].float().cpu().numpy()


def stream(codec, codes, sizes):
    codec.start(codes[:PREFIX])
    pieces, begin = [], PREFIX
    while begin < len(codes):
        size = sizes[min(len(pieces), len(sizes) - 1)]
        pieces.append(codec.decode(codes[begin : begin + size]))
        assert len(pieces[-1]) == len(codes[begin : begin + size]) * SAMPLES_PER_FRAME
        begin += size
    return np.concatenate(pieces)


@pytest.fixture(scope="module")
def exact(float32_decoder, codes):
    """The float64 decode: what every lower precision is measured against."""
    return full_decode(copy.deepcopy(float32_decoder).to(torch.float64), codes)


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=str)
def test_float64_graphs_equal_eager_equal_full(float32_decoder, codes, exact, sizes):
    decoder = copy.deepcopy(float32_decoder).to(torch.float64)
    graphed = CausalCodecDecoder(decoder)
    assert graphed.capture() > 0 and graphed.capture() == 0.0  # captured once
    eager = CausalCodecDecoder(decoder, use_cuda_graphs=False)
    from_graphs = stream(graphed, codes, sizes)
    assert_same_audio(from_graphs, stream(eager, codes, sizes), "float64 graphs vs eager")
    assert_same_audio(from_graphs, exact, "float64 stream vs full")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("sizes", CHUNKINGS, ids=str)
def test_graphs_and_eager_as_accurate_as_qwen_tts(float32_decoder, codes, exact, sizes, dtype, no_tf32):
    decoder = copy.deepcopy(float32_decoder).to(dtype)
    theirs = full_decode(decoder, codes)
    graphed = CausalCodecDecoder(decoder)
    eager = CausalCodecDecoder(decoder, use_cuda_graphs=False)
    assert_as_accurate(stream(graphed, codes, sizes), theirs, exact, f"{dtype} graphs")
    assert_as_accurate(stream(eager, codes, sizes), theirs, exact, f"{dtype} eager")


def test_lazy_capture_mid_sequence_keeps_the_state(float32_decoder, codes, exact, no_tf32):
    codec = CausalCodecDecoder(float32_decoder)  # captures at its first decode, after the prefix
    assert_as_accurate(stream(codec, codes, [4]), full_decode(float32_decoder, codes), exact, "lazy capture")
