# TFLite's requantization on the device, for the layers of imported int8 .tflite models: exactly the integers of
# the host's microdx.fixedpoint.tflite_requantize. TFLite keeps each real multiplier as a Q31 integer `m` in
# [2**30, 2**31) and a `shift`. Double rounding (convolutions, ADD): the rounded high word of (acc << max(shift, 0))
# times m over 2**31, then a rounding shift right by max(-shift, 0); single rounding (per-channel FULLY_CONNECTED):
# acc * m over 2**(31 - shift), rounded. Both round halves up (toward +inf): what TFLite's nudge and its truncating
# C division give (the host's int64 definitions in microdx.fixedpoint, tested). The 62-bit
# product is formed in 14-bit limbs: a column of three limb products and a carry stays below 2**30, so a 32-bit MCU
# computes it in small ints, allocating nothing (m, at least 2**30, is passed as its 16-bit halves for the same
# reason). Pure Python, the reference of udx/tflq_viper.py (requant and, per tile row or pixel, requant_run); the
# int8 kernels call it for layers whose entry has "rq" (udx/dense.py requant_row).


def round_shift(x, b0, b1, b2, t):
    """x * m / 2**t rounded half up: floor((P + 2**(t-1)) / 2**t) for P = |x| * m, and for negative x
    -floor((P + 2**(t-1) - 1) / 2**t). x: int32; m = b0 + b1 2**14 + b2 2**28 (14-bit limbs: m itself,
    2**30 or more, would be a long int on an MCU); t: 1 .. 62."""
    neg = x < 0
    a = -x if neg else x
    return round_limbs(neg, a & 0x3FFF, (a >> 14) & 0x3FFF, a >> 28, b0, b1, b2, t)


def round_limbs(neg, a0, a1, a2, b0, b1, b2, t):
    """round_shift with |x| given as its limbs a0, a1, a2 too (udx/softmax_tfl.py keeps a value it multiplies many
    times that way) and its sign as `neg`."""
    q = half = below = 0
    c = 0
    i = 0
    while i < 5:   # limb i of P (bits 14 i ..): its column of products plus the carry
        if i == 0:
            c += a0 * b0
        elif i == 1:
            c += a0 * b1 + a1 * b0
        elif i == 2:
            c += a0 * b2 + a2 * b0 + a1 * b1
        elif i == 3:
            c += a1 * b2 + a2 * b1
        else:
            c += a2 * b2
        r = c & 0x3FFF if i < 4 else c
        c >>= 14
        k = 14 * i
        q += r << (k - t) if k >= t else r >> (t - k)
        b = t - 1 - k              # bit t - 1 of P in this limb?
        if b >= 0 and (b < 14 or i == 4):
            half = (r >> b) & 1
            if r & ((1 << b) - 1):
                below = 1
        elif b >= 14 and r:
            below = 1
        i += 1
    return -(q + (half & below)) if neg else q + half


def requant(acc, m_lo, m_hi, shift, single):
    """TFLite's MultiplyByQuantizedMultiplier(acc, m, shift): double rounding, or with `single` the single-rounding
    form. acc: an int32 accumulator; the Q31 multiplier m as its 16-bit halves m_lo, m_hi (as a blob's bytes give
    them); shift: -31 .. 30."""
    b0 = m_lo & 0x3FFF
    b1 = (m_lo >> 14) | ((m_hi & 0xFFF) << 2)
    b2 = m_hi >> 12
    if single:
        return round_shift(acc, b0, b1, b2, 31 - shift)
    high = round_shift(acc << shift if shift > 0 else acc, b0, b1, b2, 31)
    if shift >= 0:
        return high
    e = -shift
    mask = (1 << e) - 1
    return (high >> e) + (1 if (high & mask) > (mask >> 1) + (1 if high < 0 else 0) else 0)
