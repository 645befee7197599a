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


# --- TFLite's requantization (the int8 TFLite importer keeps a model's own multipliers) -------------------------
# TFLite stores each real multiplier as a Q31 integer M in [2**30, 2**31) and a shift (MultiplyByQuantizedMultiplier
# in its reference kernels): x << max(shift, 0), then SaturatingRoundingDoublingHighMul(x, M) = the 64-bit product
# 2*x*M divided by 2**32 in C's truncating division after a nudge of 2**30 (1 - 2**30 below zero): halves round up,
# then RoundingDivideByPOT by max(-shift, 0): an arithmetic shift right that rounds half away from zero.
# tflite_requantize computes exactly that with 14-bit limbs, so that no product or column sum leaves MicroPython's
# 31-bit small ints on an MCU (nor int32), as the device does (udx/tflq.py).

def tflite_requantize_int64(acc, mult, shift):
    """TFLite's MultiplyByQuantizedMultiplier, literally, in int64 (the definition tflite_requantize is checked
    against). acc: int32 values; mult: Q31 multipliers in [0, 2**31); shift: ints in [-31, 30]."""
    x = np.asarray(acc, dtype=np.int64) << np.maximum(np.asarray(shift, dtype=np.int64), 0)
    ab = x * np.asarray(mult, dtype=np.int64)
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))          # C's division truncates toward zero
    e = np.maximum(-np.asarray(shift, dtype=np.int64), 0)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + ((high & mask) > threshold)


LIMB = 14   # bits per limb: a column of three limb products and a carry stays below 2**30 (an MCU's small ints)


def _product_limbs(x, mult):
    """(x < 0, limbs of P = |x| * mult): five 14-bit limbs, least significant first (the last may be wider), for
    int32 x and 0 <= mult < 2**31. Every product and column sum stays below 2**30 (asserted inside int32)."""
    neg = x < 0
    a = np.abs(x)                      # <= 2**31: |INT32_MIN| fits the limbs (14 + 14 + 4 bits)
    mask = (1 << LIMB) - 1
    a0, a1, a2 = a & mask, (a >> LIMB) & mask, a >> 2 * LIMB
    b0, b1, b2 = mult & mask, (mult >> LIMB) & mask, mult >> 2 * LIMB
    limbs, c = [], np.zeros_like(a)
    for column in ((a0 * b0,), (a0 * b1, a1 * b0), (a0 * b2, a2 * b0, a1 * b1), (a1 * b2, a2 * b1), (a2 * b2,)):
        for product in column:
            c = c + product
            if np.size(c) and c.max() >= 1 << 30:
                raise AssertionError("requant column leaves the 31-bit small ints")
        limbs.append(c & mask if len(limbs) < 4 else c)
        c = c >> LIMB
    return neg, limbs


def _round_shift(x, mult, t):
    """x * mult / 2**t rounded half up (toward +inf), exactly as TFLite rounds, for int32 x, 0 <= mult < 2**31 and
    1 <= t <= 62: floor((P + 2**(t-1)) / 2**t) for P = |x| * mult, and below zero -floor((P + 2**(t-1) - 1) / 2**t),
    which is the truncating division of TFLite's nudged high multiply (t = 31) and its single-rounding multiply
    (t = 31 - shift) alike. From the limbs: the bits of P from t up, bit t - 1, and whether any bit below is set."""
    neg, limbs = _product_limbs(x, mult)
    q = np.zeros_like(x)
    half = np.zeros_like(x)
    below = np.zeros_like(x, dtype=bool)
    for i, r in enumerate(limbs):   # limbs hold disjoint bits: P >> t is the sum of each limb's bits from t up
        lo_bit = LIMB * i
        up = lo_bit - t
        width = LIMB if i < 4 else 40
        part = np.where(up >= 0, r << np.clip(up, 0, 62), r >> np.clip(-up, 0, 62))
        q = q + part
        check_int32("requant quotient", q)
        k = t - 1 - lo_bit            # where bit t - 1 sits in this limb
        inside = (k >= 0) & (k < width)
        kk = np.clip(k, 0, width - 1)
        half = np.where(inside, (r >> kk) & 1, half)
        below |= ((k >= width) & (r != 0)) | (inside & ((r & ((np.int64(1) << kk) - 1)) != 0))
    return np.where(neg, -(q + (half & below)), q + half)


def _high_mul(x, mult):
    """SaturatingRoundingDoublingHighMul(x, mult) for int32 x and 0 <= mult < 2**31 (mult never INT32_MIN, so it
    never saturates): the 64-bit 2 x mult over 2**32 with TFLite's nudge and truncating division."""
    high = _round_shift(x, mult, 31)
    check_int32("requant high word", high)
    return high


def tflite_requantize_single_int64(acc, mult, shift):
    """TFLite's single-rounding multiply, literally, in int64: (acc * mult + 2**(30 - shift)) >> (31 - shift)."""
    t = 31 - np.asarray(shift, dtype=np.int64)
    return (np.asarray(acc, dtype=np.int64) * np.asarray(mult, dtype=np.int64) + (np.int64(1) << (t - 1))) >> t


def tflite_requantize(acc, mult, shift, single=False):
    """TFLite's MultiplyByQuantizedMultiplier(acc, mult, shift) elementwise, exactly, every intermediate inside
    int32 (asserted): what the device computes for a TFLite model's layers (udx/tflq.py). acc: int32 values; mult: Q31
    multipliers in [0, 2**31); shift: ints in [-31, 30] (left when positive). `single`: the single-rounding form
    round(acc * mult / 2**(31 - shift)), halves up, which TFLite's per-channel FULLY_CONNECTED reference computes
    (measured on the fixtures); the default is the double rounding of its convolutions and ADD."""
    acc = np.broadcast_to(np.asarray(acc, dtype=np.int64), np.broadcast_shapes(np.shape(acc), np.shape(mult)))
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), acc.shape)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), acc.shape)
    check_int32("accumulator", acc)
    if single:
        return _round_shift(acc, mult, 31 - shift)
    x = acc << np.maximum(shift, 0)
    check_int32("requant left shift", x)
    high = _high_mul(x, mult)
    e = np.maximum(-shift, 0)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + ((high & mask) > threshold)


def tflite_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier of each double `real`: (Q31 multiplier in [2**30, 2**31), shift) with
    real = multiplier * 2**(shift - 31); 0 gives (0, 0)."""
    mults, shifts = [], []
    for r in np.atleast_1d(np.asarray(real, dtype=np.float64)):
        if r == 0:
            mults.append(0)
            shifts.append(0)
            continue
        frac, exp = math.frexp(float(r))
        q = int(round(frac * (1 << 31)))          # std::round: half away from zero (frac > 0)
        if q == 1 << 31:
            q //= 2
            exp += 1
        if exp < -31:                              # TFLite flushes such tiny multipliers to zero
            q, exp = 0, 0
        mults.append(q)
        shifts.append(exp)
    return np.array(mults, dtype=np.int64), np.array(shifts, dtype=np.int64)
