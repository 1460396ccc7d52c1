"""The one rule for comparing two waveforms decoded from the same codes. Every streamed-vs-whole,
graphs-vs-eager and side-stream-vs-main-stream comparison of audio uses these two functions.

1. Exactness is shown in float64 (`assert_same_audio`). Two float64 decodes of the same codes that differ
   only in how the codec's work is grouped (chunk sizes, split segments, kernels, CUDA graphs, streams) agree
   to float64 rounding (2**-29 of float32's, so below 1e-10 here) except for two float32 steps that qwen-tts
   keeps in a float64 model: the output is returned as float32, which can put two values that straddle a
   rounding boundary one float32 step apart (<= 2**-24 for |y| <= 1, the codec clamps), and the rotary
   embedding of the codec's transformer computes cos/sin in float32 ("Force float32" in qwen-tts's rotary
   forward), where kernels for different shapes (positions of one chunk vs of the whole sequence) may round
   an angle's cos/sin one float32 step apart; that relative 2**-24 passes through the attention layers
   into the samples at about the same relative size. Measured: 0 on the CPU; 4.1e-7 on an H200 (released
   architecture, 150 frames, bench/results/2026-12-01-h200-bounds/). Bound: EXACT_BOUND = 2**-20 (9.5e-7)
   per sample, i.e. 16 float32 steps at full scale. An error of the algorithm itself (state carried wrongly,
   a frame lost or doubled, a segment restarted at the wrong place) is of the order of the signal: a
   history one frame short gave 0.13. Thread counts and CPU kernels only move the float64 rounding.
2. A lower precision (float32, bfloat16) is judged against the float64 decode of the same codes
   (`assert_as_accurate`): ours may be no further from it than ACCURACY_RATIO = 2 times qwen-tts's own decode
   in that precision is, in the largest and in the root-mean-square per-sample error. The two run the same
   operations summed in another order, so their errors follow one model; the factor leaves room for the
   spread of a maximum over samples (measured ratios 0.98-1.16 on the CPU). Only for audio-range codecs: on a
   codec that clips nearly every sample, the error lives in the few unclipped samples, whose pre-clamp values
   are sums of huge terms, and a maximum over a handful of such samples has no stable ratio (rule 1 covers
   those codecs).
"""

import numpy as np

EXACT_BOUND = 2.0**-20
ACCURACY_RATIO = 2.0


def assert_same_audio(got: np.ndarray, expected: np.ndarray, what: str = "") -> float:
    """Rule 1: two float64 decodes (returned as float32) of the same codes, equal to float64 rounding."""
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    worst = float(diff.max(initial=0.0))
    print(f"{what}: {len(got)} samples, max |diff| {worst:.3g} (bound {EXACT_BOUND:.3g})")
    assert worst <= EXACT_BOUND, f"{what}: max |diff| {worst:.3g} > {EXACT_BOUND:.3g}"
    return worst


def errors(wav: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(max, rms) per-sample error of `wav` against the float64 decode `exact`."""
    diff = wav.astype(np.float64) - exact.astype(np.float64)
    return float(np.abs(diff).max(initial=0.0)), float(np.sqrt(np.mean(diff**2))) if len(diff) else 0.0


def assert_as_accurate(ours: np.ndarray, theirs: np.ndarray, exact: np.ndarray, what: str = "") -> None:
    """Rule 2: `ours` (a lower-precision decode) is as close to the float64 decode `exact` as qwen-tts's own
    decode `theirs` in the same precision is, within ACCURACY_RATIO."""
    assert ours.shape == theirs.shape == exact.shape, (what, ours.shape, theirs.shape, exact.shape)
    ours_max, ours_rms = errors(ours, exact)
    their_max, their_rms = errors(theirs, exact)
    print(f"{what}: error to the float64 decode, max / rms: ours {ours_max:.3g} / {ours_rms:.3g}, "
          f"qwen-tts {their_max:.3g} / {their_rms:.3g}")
    assert their_max > 0, f"{what}: the reference equals the float64 decode: no rounding to compare with"
    assert ours_max <= ACCURACY_RATIO * their_max, what
    assert ours_rms <= ACCURACY_RATIO * their_rms, what
