"""The 32-bit-exact requantization: exact rounding, int32 bounds, multiplier precision."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from microdx.fixedpoint import M_LIMIT, SHIFT_MAX, SHIFT_MIN, check_int32, quantize_multiplier, requantize

INT32 = st.integers(-(2**31), 2**31 - 1)


def exact(acc, m, s):
    """round_half_up(acc * m / 2**s) in exact rational arithmetic."""
    v = Fraction(acc * m, 2**s) + Fraction(1, 2)
    return v.numerator // v.denominator


@given(INT32, st.integers(0, 2**14 - 1), st.integers(SHIFT_MIN, SHIFT_MAX))
@settings(max_examples=3000, deadline=None)
def test_requantize_is_exact_rounding(acc, m, s):
    assert int(requantize(acc, m, s)) == exact(acc, m, s)


def test_requantize_extremes_stay_in_int32():
    for acc in (-(2**31), 2**31 - 1, -1, 0, 1, 65535, -65536):
        for s in (SHIFT_MIN, SHIFT_MAX):
            assert int(requantize(acc, 2**14 - 1, s)) == exact(acc, 2**14 - 1, s)


def test_requantize_refuses_accumulator_outside_int32():
    with pytest.raises(AssertionError, match="accumulator leaves int32"):
        requantize(2**31, 1 << 13, 20)


@given(st.floats(1e-12, M_LIMIT, exclude_max=True))
@settings(max_examples=1000, deadline=None)
def test_multiplier_precision(M):
    m, s = quantize_multiplier(M)
    assert SHIFT_MIN <= s <= SHIFT_MAX and 0 <= m < 2**14
    if s < SHIFT_MAX:
        assert abs(m / 2**s - M) <= M * 2**-14
    else:  # tiny multipliers lose relative precision but stay within one unit of the last place
        assert abs(m / 2**s - M) <= 2.0**-SHIFT_MAX


def test_multiplier_limit():
    with pytest.raises(ValueError):
        quantize_multiplier(M_LIMIT)
    assert quantize_multiplier(0.0) == (0, SHIFT_MIN)


def test_check_int32():
    check_int32("ok", np.array([-(2**31), 2**31 - 1]))
    with pytest.raises(AssertionError, match="x leaves int32"):
        check_int32("x", np.array([2**31]))


def test_tflite_requantization_in_int32_limbs_equals_its_int64_definition():
    """TFLite's double-rounding MultiplyByQuantizedMultiplier and its single-rounding form, computed with 14-bit
    limbs inside int32 (what the device will run), equal their literal int64 definitions on random values, rounding
    halves and the int32 extremes."""
    from microdx.fixedpoint import tflite_requantize, tflite_requantize_int64, tflite_requantize_single_int64

    rng = np.random.default_rng(31)
    n = 200_000
    acc = rng.integers(-2**31, 2**31, size=n)
    acc[:8] = [-2**31, 2**31 - 1, 0, -1, 1, -2**30, 2**30, 12345]
    mult = rng.integers(2**30, 2**31, size=n)
    mult[:4] = [2**31 - 1, 2**30, 0, 1]
    shift = rng.integers(-31, 1, size=n)
    np.testing.assert_array_equal(tflite_requantize(acc, mult, shift), tflite_requantize_int64(acc, mult, shift))
    np.testing.assert_array_equal(tflite_requantize(acc, mult, shift, single=True),
                                  tflite_requantize_single_int64(acc, mult, shift))
    halves = rng.integers(-2**20, 2**20, size=n)          # mult 2**30 = 0.5: every odd value is a half
    for single, ref in ((False, tflite_requantize_int64), (True, tflite_requantize_single_int64)):
        np.testing.assert_array_equal(tflite_requantize(halves, 2**30, shift % 9 - 8, single),
                                      ref(halves, 2**30, shift % 9 - 8))
    assert tflite_requantize(-3, 2**30, -1).item() == -1 and tflite_requantize(-3, 2**30, -1, True).item() == -1
    assert tflite_requantize(3, 2**30, -1).item() == 1 and tflite_requantize(-5, 2**30, -1).item() == -1
