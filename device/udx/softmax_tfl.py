# TFLite's int8 SOFTMAX, exactly (reference_ops::Softmax with gemmlowp's fixed point; the host's microdx.gemmlowp,
# which the tests check against TFLite's reference kernels): for the softmax of an imported int8 .tflite (entry
# "tfl"). The exp of each d = max(x) - x is TFLite's, tabulated by the converter (u32 table t, 256 entries); per row
# this computes the Q12.19 sum of the rescaled exps, its reciprocal by gemmlowp's Newton iteration, and each output
# RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(reciprocal, exp), exponent) - 128. Every value stays inside
# int32; products are formed in 14-bit limbs (udx/tflq.py). On a 32-bit MCU the reciprocal's few values of 2**30 and
# more are long ints (heap objects) once per row; the per-logit work allocates nothing. Pure Python: a softmax is a
# few dozen logits once per inference.
from udx.tflq import round_limbs, round_shift

_MAX = 0x7FFFFFFF


def _srdhm(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul(a, b) for int32 a, b (never both INT32_MIN here)."""
    if b < 0:
        a = -a
        b = -b
    return round_shift(a, b & 0x3FFF, (b >> 14) & 0x3FFF, b >> 28, 31)


def _smbpot(x, e):
    """SaturatingRoundingMultiplyByPOT<e>, e > 0."""
    t = (1 << (31 - e)) - 1
    return _MAX if x > t else (-_MAX - 1 if x < -t else x << e)


def _reciprocal(a):
    """gemmlowp's one_over_one_plus_x_for_x_in_0_1 of a Q0.31 raw a in [0, 2**31)."""
    half = (a + _MAX + 1) >> 1                       # RoundingHalfSum(a, One): the sum is >= 0
    x = 1515870810 + _srdhm(half, -1010580540)       # Q2.29: 48/17 - 32/17 * half
    for _ in range(3):
        x += _smbpot(_srdhm(x, (1 << 29) - _srdhm(half, x)), 2)
    return _smbpot(x, 1)


def softmax(t, x, y, n):
    """y[0:n] from the int8 logits x[0:n] and the exp table t (1,024 bytes: u32 little-endian)."""
    top = x[0]
    for i in range(1, n):
        if x[i] > top:
            top = x[i]
    total = 0
    for i in range(n):   # the Q12.19 sum: each exp (Q0.31) divided by 2**12, rounded, from its 16-bit halves
        k = 4 * (top - x[i])
        lo = t[k] | (t[k + 1] << 8)
        total += (((t[k + 2] | (t[k + 3] << 8)) << 4) | (lo >> 12)) + (1 if (lo & 0xFFF) > 0x7FF else 0)
    bits = 0
    v = total
    while v:
        v >>= 1
        bits += 1
    # GetReciprocal: total << clz(total) is 2**31 + rest << clz; its reciprocal is a Q0.31 raw in (2**30, 2**31]
    s = _reciprocal((total - (1 << (bits - 1))) << (32 - bits))
    s0, s1, s2 = s & 0x3FFF, (s >> 14) & 0x3FFF, s >> 28
    e = 12 - (32 - bits) + 31 - 8                    # num_bits_over_unit + 31 - 8
    mask = (1 << e) - 1
    half = mask >> 1
    for i in range(n):
        k = 4 * (top - x[i])
        lo = t[k] | (t[k + 1] << 8)
        hi = t[k + 2] | (t[k + 3] << 8)
        p = round_limbs(False, s0, s1, s2, lo & 0x3FFF, (lo >> 14) | ((hi & 0xFFF) << 2), hi >> 12, 31)
        v = (p >> e) + (1 if (p & mask) > half else 0) - 128
        y[i] = 127 if v > 127 else v
