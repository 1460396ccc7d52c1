"""bench/teacher_forced.py measures what it says: every path follows the forced codes (or the run fails),
and the recorded logits are each path's own at each step (float64: no error worth the name; bf16: its
rounding shows)."""

import pytest

from bench.teacher_forced import random_codes, run_teacher_forced


# Float64 bound: each logit is a chain of dot products of width <= 128 over a few layers; evaluated in
# another order such a sum moves by a few units of 2.2e-16 times the sum of |terms| (< ~10 here): ~1e-13
# for a reordering, so 1e-12 for that part. On top, a row that reaches its sampler as float32 carries one
# rounding to float32, at most |logit| * 2**-24: the code predictor's rows (code_predictor.predict casts
# them, the sampling runs in float32) and every fused row (its heads write float32 logits). A real mistake
# (a wrong position, a missing norm, a wrong forced input) moves logits by ~0.1 at the tiny widths.
def float64_bound(res, part):
    return res["reference_logits_max_abs"][part] * 2.0**-24 + 1e-12


def test_forced_logits_of_the_reference_frame_equal_qwen_tts_in_float64():
    codes = random_codes("0b6", tiny=True, frames=4, seed=3)
    res = run_teacher_forced("0b6", tiny=True, device="cpu", frames=4, prompt_len=20, codes=codes,
                             reference_dtype="float64", dtypes=("float64", "bfloat16"),
                             paths=("reference",))  # fmt: skip
    f64, bf16 = res["float64"], res["bfloat16"]
    assert f64["reference"]["talker"]["max"] <= 1e-12  # its rows stay float64 up to the sampler
    for part, choices in (("talker", 4), ("code_predictor", 60)):
        assert f64["qwen_tts"][part]["max"] == 0.0  # the reference run repeated: deterministic
        assert f64["reference"][part]["choices"] == choices
        assert f64["reference"][part]["max"] <= float64_bound(res, part), (f64, res)
        # bf16 logits are rounded to 8 bits of mantissa: logits of spread ~1 move by > 1e-3 somewhere
        assert bf16["qwen_tts"][part]["max"] > 1e-3 and bf16["reference"][part]["max"] > 1e-3, bf16


def test_a_path_that_does_not_follow_the_forced_codes_fails_the_run():
    codes = random_codes("0b6", tiny=True, frames=2, seed=4)
    codes[1, 0] = 1087  # a control id qwen-tts suppresses: no path can choose it, so the forcing cannot hold
    with pytest.raises(RuntimeError, match="did not follow the forced codes"):
        run_teacher_forced("0b6", tiny=True, device="cpu", frames=2, prompt_len=20, codes=codes,
                           reference_dtype="float64", dtypes=("float64",), paths=("reference",))  # fmt: skip


def test_dtypes_may_not_gain_bits_after_the_reference():
    with pytest.raises(ValueError, match="must not gain bits"):
        run_teacher_forced("0b6", tiny=True, device="cpu", frames=1, dtypes=("bfloat16", "float32"))
