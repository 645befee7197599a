# Viper (native code) TFLite requantization: the integers of udx.tflq.requant, its reference, written for 32-bit
# machine ints (the unix port's are 64-bit): |INT32_MIN| wraps to itself, so its top limb is masked, and every
# product of 14-bit limbs and every column sum stays below 2**30.
import micropython


@micropython.viper
def round_shift(x: int, b0: int, b1: int, b2: int, t: int) -> int:
    neg = 0
    a = x
    if x < 0:
        neg = 1
        a = 0 - x
    a0 = a & 0x3FFF
    a1 = (a >> 14) & 0x3FFF
    a2 = (a >> 28) & 0xF
    q = 0
    half = 0
    below = 0
    c = 0
    i = 0
    while i < 5:
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
        r = c
        if i < 4:
            r = c & 0x3FFF
        c = c >> 14
        k = 14 * i
        if k >= t:
            q += r << (k - t)
        else:
            q += r >> (t - k)
        b = t - 1 - k
        if b >= 0 and (b < 14 or i == 4):
            half = (r >> b) & 1
            if r & ((1 << b) - 1):
                below = 1
        elif b >= 14 and r != 0:
            below = 1
        i += 1
    if neg:
        return 0 - (q + (half & below))
    return q + half


@micropython.viper
def requant(acc: int, m_lo: int, m_hi: int, shift: int, single: int) -> int:
    b0 = m_lo & 0x3FFF
    b1 = (m_lo >> 14) | ((m_hi & 0xFFF) << 2)
    b2 = m_hi >> 12
    if single:
        return int(round_shift(acc, b0, b1, b2, 31 - shift))
    x = acc
    if shift > 0:
        x = acc << shift
    high = int(round_shift(x, b0, b1, b2, 31))
    if shift >= 0:
        return high
    e = 0 - shift
    mask = (1 << e) - 1
    th = mask >> 1
    if high < 0:
        th += 1
    r = high >> e
    if (high & mask) > th:
        r += 1
    return r
