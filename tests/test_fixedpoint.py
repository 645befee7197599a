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
