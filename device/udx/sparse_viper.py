# Viper (native code) CSR int8 tile: the integers of udx.sparse.sparse_tile, its reference. As in dense_viper.py:
# written for 32-bit machine ints, bytes read unsigned and sign-extended branch-free. The weight is used signed,
# (v - 128) * x, so no per-row sum of x is needed; every partial sum is at most 128 * 128 per stored weight, inside
# the bound the quantizer guarantees (ops/dense.py ACC_PER_INPUT). Row pointers are checked here, row by row, before
# a row is read (returns the first bad one, as the reference does); input indices were checked below n when the
# model was opened (udx.sparse.SparseI8.verify).
import micropython


@micropython.viper
def sparse_tile(scratch, x, y, r: int, row: int, p0: int, nv: int, isz: int, zero: int, lo: int) -> int:
    s = ptr8(scratch)
    yp = ptr8(y)
    xa = int(ptr8(x))
    pv = int(s) + 4 * (r + 1)     # values, then indices, then biases and multipliers
    io = 4 * (r + 1) + nv         # udx.sparse.index_offset: u16 indices start even
    if isz == 2:
        io += io & 1
    pi = int(s) + io
    bo = io + nv * isz
    k = 0                         # this row's first value, counted from the tile's first
    j = 0
    while j < r:
        a = 4 * (j + 1)
        e = (s[a] | (s[a + 1] << 8) | (s[a + 2] << 16) | (((s[a + 3] ^ 0x80) - 0x80) << 24)) - p0
        if e < k or e > nv:
            return j + 1
        k = e
        end = int(s) + 4 * (r + 1) + e
        acc = 0
        if isz == 1:
            while pv + 4 <= end:    # unrolled x4, one expression: ~40 instructions per weight on a Cortex-M3
                v = ptr8(pv)
                i = ptr8(pi)
                acc += ((v[0] - 128) * ((ptr8(xa + i[0])[0] ^ 0x80) - 0x80)
                        + (v[1] - 128) * ((ptr8(xa + i[1])[0] ^ 0x80) - 0x80)
                        + (v[2] - 128) * ((ptr8(xa + i[2])[0] ^ 0x80) - 0x80)
                        + (v[3] - 128) * ((ptr8(xa + i[3])[0] ^ 0x80) - 0x80))
                pv += 4
                pi += 4
            while pv < end:
                acc += (ptr8(pv)[0] - 128) * ((ptr8(xa + ptr8(pi)[0])[0] ^ 0x80) - 0x80)
                pv += 1
                pi += 1
        else:
            while pv + 4 <= end:
                v = ptr8(pv)
                i = ptr8(pi)
                acc += ((v[0] - 128) * ((ptr8(xa + (i[0] | (i[1] << 8)))[0] ^ 0x80) - 0x80)
                        + (v[1] - 128) * ((ptr8(xa + (i[2] | (i[3] << 8)))[0] ^ 0x80) - 0x80)
                        + (v[2] - 128) * ((ptr8(xa + (i[4] | (i[5] << 8)))[0] ^ 0x80) - 0x80)
                        + (v[3] - 128) * ((ptr8(xa + (i[6] | (i[7] << 8)))[0] ^ 0x80) - 0x80))
                pv += 4
                pi += 8
            while pv < end:
                i = ptr8(pi)
                acc += (ptr8(pv)[0] - 128) * ((ptr8(xa + (i[0] | (i[1] << 8)))[0] ^ 0x80) - 0x80)
                pv += 1
                pi += 2
        kb = bo + 4 * j   # the requantization of udx.dense.requant_row, inline as in dense_viper.py (a call costs more)
        acc += s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)
        kq = kb + 4 * r
        mult = s[kq] | (s[kq + 1] << 8)
        sh = s[kq + 2]
        o = ((((acc >> 16) * mult) + (((acc & 0xFFFF) * mult) >> 16) + (1 << (sh - 17))) >> (sh - 16)) + zero
        if o < lo:
            o = lo
        if o > 127:
            o = 127
        yp[row + j] = o
        j += 1
    return -1
