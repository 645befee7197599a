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


@micropython.viper
def requant_run(scratch, at: int, kq: int, r: int, y, out: int, zero: int, lo: int, hi: int, rq: int):
    # The r outputs of a tile row or pixel of an imported TFLite layer: y[out + j] = clamp(requant(acc_j) + zero,
    # lo, hi) for the int32 accumulators (bias included) at scratch[at + 4 j] and the (Q31 multiplier, shift) pairs at
    # scratch[kq + 8 j]; rq 1 is the single rounding, 2 the double. The kernels store a pixel's accumulators and call
    # this once: one call per output would cost ~2,500 instructions each. round_shift's body, inline, for that reason.
    s = ptr8(scratch)
    yp = ptr8(y)
    j = 0
    while j < r:
        p = at + 4 * j
        x = s[p] | (s[p + 1] << 8) | (s[p + 2] << 16) | (((s[p + 3] ^ 0x80) - 0x80) << 24)
        p = kq + 8 * j
        m_lo = s[p] | (s[p + 1] << 8)
        m_hi = s[p + 2] | (s[p + 3] << 8)
        shift = (s[p + 4] ^ 0x80) - 0x80
        b0 = m_lo & 0x3FFF
        b1 = (m_lo >> 14) | ((m_hi & 0xFFF) << 2)
        b2 = m_hi >> 12
        t = 31
        if rq == 1:
            t = 31 - shift
        elif shift > 0:
            x = x << shift
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
        if t == 31:   # double rounding (every conv): straight-line limbs, P >> 31 from limbs 2 .. 4
            c = a0 * b0
            r0 = c & 0x3FFF
            c = (c >> 14) + a0 * b1 + a1 * b0
            r1 = c & 0x3FFF
            c = (c >> 14) + a0 * b2 + a2 * b0 + a1 * b1
            r2 = c & 0x3FFF
            c = (c >> 14) + a1 * b2 + a2 * b1
            r3 = c & 0x3FFF
            r4 = (c >> 14) + a2 * b2
            q = (r2 >> 3) + (r3 << 11) + (r4 << 25)
            half = (r2 >> 2) & 1
            if r0 or r1 or (r2 & 3):
                below = 1
            t = 0   # done: skip the general loop
        if t:
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
                v = c
                if i < 4:
                    v = c & 0x3FFF
                c = c >> 14
                k = 14 * i
                if k >= t:
                    q += v << (k - t)
                else:
                    q += v >> (t - k)
                b = t - 1 - k
                if b >= 0 and (b < 14 or i == 4):
                    half = (v >> b) & 1
                    if v & ((1 << b) - 1):
                        below = 1
                elif b >= 14 and v != 0:
                    below = 1
                i += 1
        if neg:
            v = 0 - (q + (half & below))
        else:
            v = q + half
        if rq == 2 and shift < 0:   # TFLite's RoundingDivideByPOT
            e = 0 - shift
            mask = (1 << e) - 1
            th = mask >> 1
            if v < 0:
                th += 1
            if (v & mask) > th:
                v = (v >> e) + 1
            else:
                v = v >> e
        v += zero
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        yp[out + j] = v
        j += 1
