# Viper (native code) int16-weight tile: the integers of udx.dense16.dense16_tile, its reference. As in
# dense_viper.py: 32-bit machine ints (the quantizer bounds each row's L1 norm so every partial sum stays inside
# int32), bytes read unsigned and sign-extended branch-free, unrolled x4 by pointer walking, requantization inline.
import micropython


@micropython.viper
def dense16_tile(scratch, x, y, n: int, r: int, row: int, zero: int, lo: int):
    s = ptr8(scratch)
    yp = ptr8(y)
    x0 = int(ptr8(x))
    n4 = n & ~3
    kb = (2 * r * n + 3) & ~3   # udx.dense.tile_bytes
    w = int(s)
    j = 0
    while j < r:
        acc = 0
        xa = x0
        end = w + 2 * n4
        while w < end:
            wp = ptr8(w)
            xq = ptr8(xa)
            acc += (((((wp[1] << 8) | wp[0]) ^ 0x8000) - 0x8000) * ((xq[0] ^ 0x80) - 0x80)
                    + ((((wp[3] << 8) | wp[2]) ^ 0x8000) - 0x8000) * ((xq[1] ^ 0x80) - 0x80)
                    + ((((wp[5] << 8) | wp[4]) ^ 0x8000) - 0x8000) * ((xq[2] ^ 0x80) - 0x80)
                    + ((((wp[7] << 8) | wp[6]) ^ 0x8000) - 0x8000) * ((xq[3] ^ 0x80) - 0x80))
            w += 8
            xa += 4
        end += 2 * (n - n4)
        while w < end:
            wp = ptr8(w)
            acc += ((((wp[1] << 8) | wp[0]) ^ 0x8000) - 0x8000) * ((ptr8(xa)[0] ^ 0x80) - 0x80)
            w += 2
            xa += 1
        acc += s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)
        kq = kb + 4 * r
        mult = s[kq] | (s[kq + 1] << 8)
        sh = s[kq + 2]
        v = ((((acc >> 16) * mult) + (((acc & 0xFFFF) * mult) >> 16) + (1 << (sh - 17))) >> (sh - 16)) + zero
        if v < lo:
            v = lo
        if v > 127:
            v = 127
        yp[row + j] = v
        kb += 4
        j += 1
