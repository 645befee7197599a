# Viper (native code) codebook tile: the integers of udx.codebook.codebook_tile, its reference. As in
# dense_viper.py: 32-bit machine ints, bytes read unsigned and sign-extended branch-free, requantization inline.
# Each weight is cb[index]: the bits-bit index is taken from the two bytes at its bit position (the row's spare
# byte makes the second always readable).
import micropython


@micropython.viper
def codebook_tile(scratch, x, y, n: int, r: int, row: int, xs: int, zero: int, lo: int, bits: int):
    s = ptr8(scratch)
    xp = ptr8(x)
    yp = ptr8(y)
    k0 = 1 << bits
    mask = k0 - 1
    st = (n * bits + 7) // 8 + 1
    kb = k0 + ((r * st + 3) & ~3)   # udx.dense.tile_bytes
    base = k0
    j = 0
    while j < r:
        acc = 0
        p = 0
        i = 0
        while i < n:
            a = base + (p >> 3)
            acc += s[((s[a] | (s[a + 1] << 8)) >> (p & 7)) & mask] * ((xp[i] ^ 0x80) - 0x80)
            p += bits
            i += 1
        acc += (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)) - xs
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
        base += st
        j += 1
