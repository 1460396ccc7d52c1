"""Streaming codec decode on CUDA: graph-replayed chunks == eager chunks == qwen-tts's decode (gpu-marked).

The released codec architecture with random audio-range weights (waveform std ~0.2), 120 frames after a
30-frame voice-clone prefix (so the 72-frame attention window slides), chunks of 1 then 4 (graph sizes
replayed as they are) and of 3 then 7 (replayed as 2+1 and 4+2+1). STATED TOLERANCES, max |diff|
(measured on an H100, 2026-11-25, in brackets):
  - float32 (TF32 off): graphs vs eager and stream vs qwen-tts's chunked_decode of prefix ++ codes
    <= FP32_TOLERANCE = 2e-5 [graphs vs eager 3.9e-6 / 6.3e-6, stream vs full 8.0e-6, lazy capture 8.3e-6];
  - bfloat16: graphs vs eager and stream vs qwen-tts's bfloat16 decode <= BF16_TOLERANCE = 0.1 [0.027 /
    0.044, 0.046], and the stream is no further from the float32 decode than qwen-tts's own bfloat16
    decode is: mean |diff| within BF16_MEAN_RATIO = 1.5 of it [0.00873 vs 0.00867].
"""

import numpy as np
import pytest
import torch

from qwen3_tts_ros.engine.audio.causal_codec import CausalCodecDecoder
from qwen3_tts_ros.engine.checkpoints.tiny_checkpoint import random_speech_decoder
from qwen3_tts_ros.engine.types import SAMPLES_PER_FRAME

pytestmark = pytest.mark.gpu
PREFIX, FRAMES = 30, 120
FP32_TOLERANCE = 2e-5
BF16_TOLERANCE = 0.1
BF16_MEAN_RATIO = 1.5
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


def max_diff(a, b, what):
    diff = np.abs(a.astype(np.float64) - b)
    print(f"{what}: max |diff| {diff.max():.3g}, mean {diff.mean():.3g}")
    return diff.max()


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=str)
def test_float32_graphs_equal_eager_equal_full(float32_decoder, codes, sizes, no_tf32):
    full = full_decode(float32_decoder, codes)
    graphed = CausalCodecDecoder(float32_decoder)
    assert graphed.capture() > 0 and graphed.capture() == 0.0  # captured once
    eager = CausalCodecDecoder(float32_decoder, use_cuda_graphs=False)
    from_graphs, from_eager = stream(graphed, codes, sizes), stream(eager, codes, sizes)
    assert max_diff(from_graphs, from_eager, "graphs vs eager") <= FP32_TOLERANCE
    assert max_diff(from_graphs, full, "float32 stream vs full") <= FP32_TOLERANCE


def test_lazy_capture_mid_sequence_keeps_the_state(float32_decoder, codes, no_tf32):
    codec = CausalCodecDecoder(float32_decoder)  # captures at its first decode, after the prefix
    assert max_diff(stream(codec, codes, [4]), full_decode(float32_decoder, codes), "lazy") <= FP32_TOLERANCE


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=str)
def test_bfloat16_stream_as_close_as_qwen_tts_bfloat16(float32_decoder, codes, sizes):
    import copy

    reference = full_decode(float32_decoder, codes)
    decoder = copy.deepcopy(float32_decoder).to(torch.bfloat16)
    full = full_decode(decoder, codes)
    graphed = CausalCodecDecoder(decoder)
    eager = CausalCodecDecoder(decoder, use_cuda_graphs=False)
    from_graphs, from_eager = stream(graphed, codes, sizes), stream(eager, codes, sizes)
    assert max_diff(from_graphs, from_eager, "bf16 graphs vs eager") <= BF16_TOLERANCE
    assert max_diff(from_graphs, full, "bf16 stream vs bf16 full") <= BF16_TOLERANCE
    own = np.abs(full.astype(np.float64) - reference).mean()
    ours = np.abs(from_graphs.astype(np.float64) - reference).mean()
    print(f"mean |diff| to the float32 decode: qwen-tts bf16 {own:.3g}, stream bf16 {ours:.3g}")
    assert ours <= BF16_MEAN_RATIO * own
