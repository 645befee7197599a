"""Fixed-point requantization that is exact under 32-bit integer arithmetic (DESIGN §3).

A real multiplier M (0 <= M < 1/8) is stored as m / 2**s with m a 14-bit integer in [2**13, 2**14)
and 17 <= s <= 46. requantize(acc) = round_half_up(acc * m / 2**s), computed by splitting acc into
its high and low 16 bits so that no product leaves int32 (and none leaves the 31-bit small-int range
of MicroPython on a 32-bit MCU):

    hi = acc >> 16, lo = acc & 0xFFFF                          (acc = hi * 2**16 + lo)
    r  = (hi*m + ((lo*m) >> 16) + (1 << (s-17))) >> (s-16)   (exact: see tests/test_fixedpoint.py)
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MULT_BITS = 14
SHIFT_MIN, SHIFT_MAX = 17, 46
M_LIMIT = 2.0 ** (MULT_BITS - SHIFT_MIN)   # 1/8: multipliers must stay below this


def check_int32(what: str, values) -> None:
    """Raise AssertionError if any value leaves int32: the device would silently wrap (viper) or
    allocate a long int (MicroPython small ints are 31-bit on MCUs)."""
    a = np.asarray(values)
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        raise AssertionError(f"{what} leaves int32: range [{a.min()}, {a.max()}]")


def quantize_multiplier(M: float) -> tuple[int, int]:
    """(m, s) with m / 2**s ~= M, relative error <= 2**-14. Requires 0 <= M < M_LIMIT."""
    if not 0.0 <= M < M_LIMIT:
        raise ValueError(f"multiplier {M} outside [0, {M_LIMIT})")
    if M == 0.0:
        return 0, SHIFT_MIN
    frac, exp = math.frexp(M)                   # M = frac * 2**exp, frac in [0.5, 1)
    s = MULT_BITS - exp
    m = round(frac * 2**MULT_BITS)
    if m == 2**MULT_BITS:                       # rounding reached the next power of two
        if s > SHIFT_MIN:
            m, s = m // 2, s - 1
        else:                                   # M a hair under 1/8: the largest m is the closest we have
            m -= 1
    if s > SHIFT_MAX:                           # tiny multiplier: keep the largest shift, lose precision
        m = round(M * 2.0**SHIFT_MAX)
        s = SHIFT_MAX
    assert SHIFT_MIN <= s <= SHIFT_MAX and 0 <= m < 2**MULT_BITS
    return int(m), int(s)


def requantize(acc, m, s):
    """round_half_up(acc * m / 2**s) elementwise, exactly as the device computes it.

    acc: int32 values (any int array); m, s: per-channel arrays broadcastable to acc.
    Asserts that every intermediate stays inside int32.
    """
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(m, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    check_int32("accumulator", acc)
    hi = acc >> 16
    lo = acc & 0xFFFF
    p_hi = hi * m
    p_lo = lo * m
    check_int32("requant hi*m", p_hi)
    check_int32("requant lo*m", p_lo)
    total = p_hi + (p_lo >> 16) + (np.int64(1) << (s - 17))
    check_int32("requant sum", total)
    return total >> (s - 16)
