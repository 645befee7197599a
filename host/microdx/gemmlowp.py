"""gemmlowp's fixed-point arithmetic as TFLite's int8 SOFTMAX reference kernel uses it (reference_ops::Softmax with
gemmlowp::exp_on_negative_values and one_over_one_plus_x_for_x_in_0_1), in int64 numpy: the definitions the
softmax of an imported int8 .tflite follows, on the host and (udx/softmax_tfl.py) on the device.

A raw int32 v of FixedPoint<int32, I> means v / 2**(31 - I). The 256 exp values TFLite computes from max(x) - x
(0 .. 255 codes) depend only on the input scale, so the importer tabulates them (exp_table); the per-row part
(the sum, its reciprocal, the rescaled outputs) is softmax_rows, which the device computes the same way.
"""
from __future__ import annotations

import math

import numpy as np

from microdx.fixedpoint import check_int32, tflite_multiplier

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SCALED_DIFF_INTEGER_BITS = 5      # the exp input is Q5.26
ACCUMULATION_INTEGER_BITS = 12    # the sum of exps is Q12.19


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul: a * b / 2**31, the nudge 2**30 (1 - 2**30 below zero), C's truncation."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rdbpot(x, e):
    """RoundingDivideByPOT: x / 2**e, halves away from zero."""
    x = np.asarray(x, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0)))


def smbpot(x, e: int):
    """SaturatingRoundingMultiplyByPOT<e> for e > 0: x * 2**e, saturated to int32."""
    x = np.asarray(x, dtype=np.int64)
    t = (1 << (31 - e)) - 1
    return np.where(x > t, INT32_MAX, np.where(x < -t, INT32_MIN, x << e))


def _exp_quarter(a):
    """exp_on_interval_between_negative_one_quarter_and_0_excl on Q0.31 raws a."""
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    t = rdbpot(srdhm(rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    return 1895147668 + srdhm(1895147668, x + t)


def exp_on_negative_values(a):
    """gemmlowp::exp_on_negative_values of Q5.26 raws a <= 0: Q0.31 raws of exp(a / 2**26)."""
    a = np.asarray(a, dtype=np.int64)
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(smbpot(a_mod, SCALED_DIFF_INTEGER_BITS))
    remainder = a_mod - a
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
                           (3, 720401), (4, 242)):
        result = np.where(remainder & (1 << (26 + exponent)), srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius: (input multiplier, left shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    m, shift = tflite_multiplier(real)
    m, shift = int(m[0]), int(shift[0])
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << shift)
    return m, shift, -int(math.floor(radius))


def exp_table(input_scale: float, beta: float = 1.0) -> np.ndarray:
    """The Q0.31 exp TFLite computes for each d = max(x) - x in 0 .. 255 (0 where d is below its diff_min: those
    outputs are -128 and add nothing to the sum), as uint32."""
    m, shift, diff_min = softmax_params(input_scale, beta)
    d = -np.arange(256, dtype=np.int64)
    check_int32("softmax rescaled difference", d << shift)
    e = exp_on_negative_values(srdhm(d << shift, m))
    return np.where(d >= diff_min, e, 0).astype(np.uint32)


def one_over_one_plus_x(a):
    """gemmlowp::one_over_one_plus_x_for_x_in_0_1 of Q0.31 raws a in [0, 1): Q0.31 raws of 1 / (1 + a)."""
    a = np.asarray(a, dtype=np.int64)
    s = a + INT32_MAX
    half = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))      # RoundingHalfSum(a, One)
    x = 1515870810 + srdhm(half, -1010580540)                   # Q2.29: 48/17 - 32/17 * half
    for _ in range(3):
        x = x + smbpot(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return smbpot(x, 1)


def softmax_rows(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """TFLite's int8 softmax of the rows of int8 codes x (N, n) from exp_table's `table`: int8 (N, n)."""
    x = np.asarray(x, dtype=np.int64)
    e = table.astype(np.int64)[x.max(axis=1, keepdims=True) - x]
    total = rdbpot(e, ACCUMULATION_INTEGER_BITS).sum(axis=1)      # Q12.19
    check_int32("softmax sum of exps", total)
    clz = np.array([32 - int(v).bit_length() for v in total])    # CountLeadingZeros of the uint32
    bits_over_unit = ACCUMULATION_INTEGER_BITS - clz
    shifted_minus_one = (total << clz) - (1 << 31)                # (uint32(sum) << clz) - 2**31, in [0, 2**31)
    scale = one_over_one_plus_x(shifted_minus_one)
    exponent = bits_over_unit + 31 - 8
    out = rdbpot(srdhm(scale[:, None], e), exponent[:, None]) - 128
    return np.clip(out, -128, 127).astype(np.int8)
