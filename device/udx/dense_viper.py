# Viper (native code) int8 dense tile: the integers of udx.dense.dense_tile, its reference, at a few instructions
# per MAC. Written for 32-bit machine ints, as on every MCU (the unix port's are 64-bit): the host reference asserts
# that every partial sum stays inside int32, so nothing here can wrap on either; bytes are read unsigned and
# sign-extended branch-free ((v ^ 0x80) - 0x80). Only loads where MicroPython has the native emitter.
import micropython


@micropython.viper
def dense_tile(scratch, x, y, n: int, r: int, row: int, xs: int, zero: int, lo: int):
    s = ptr8(scratch)
    yp = ptr8(y)
    x0 = int(ptr8(x))
    n8 = n & ~7
    kb = (r * n + 3) & ~3   # this row's bias (udx.dense.tile_bytes), then (4 r bytes on) its multiplier and shift
    w = int(s)              # address of this row's first weight
    j = 0
    while j < r:
        # pointer-walking, unrolled x8: ~22 instructions per MAC on a Cortex-M3 (qemu-m3), against ~49 for a plain
        # indexed loop; ptr8(address)[k] with a constant k is one load with an immediate offset
        acc = 0
        xa = x0
        end = w + n8
        while w < end:
            wp = ptr8(w)
            xq = ptr8(xa)
            acc += (wp[0] * ((xq[0] ^ 0x80) - 0x80) + wp[1] * ((xq[1] ^ 0x80) - 0x80)
                    + wp[2] * ((xq[2] ^ 0x80) - 0x80) + wp[3] * ((xq[3] ^ 0x80) - 0x80)
                    + wp[4] * ((xq[4] ^ 0x80) - 0x80) + wp[5] * ((xq[5] ^ 0x80) - 0x80)
                    + wp[6] * ((xq[6] ^ 0x80) - 0x80) + wp[7] * ((xq[7] ^ 0x80) - 0x80))
            w += 8
            xa += 8
        end += n - n8
        while w < end:
            acc += ptr8(w)[0] * ((ptr8(xa)[0] ^ 0x80) - 0x80)
            w += 1
            xa += 1
        # the requantization of udx.dense.requant_row, inline: a call to a shared viper function costs ~2,500
        # instructions on a Cortex-M3 (measured: 25.1 -> 29.0 instructions per MAC on a 650-512-512-6 model)
        acc += (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)) - xs
        kq = kb + 4 * r
        mult = s[kq] | (s[kq + 1] << 8)
        sh = s[kq + 2]
        # (acc * mult) >> sh rounded half up, in 16-bit halves so no product leaves int32
        v = ((((acc >> 16) * mult) + (((acc & 0xFFFF) * mult) >> 16) + (1 << (sh - 17))) >> (sh - 16)) + zero
        if v < lo:
            v = lo
        if v > 127:
            v = 127
        yp[row + j] = v
        kb += 4
        j += 1
