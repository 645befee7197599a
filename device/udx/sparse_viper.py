# Viper (native code) CSR int8 tile: the integers of udx.sparse.sparse_tile, its reference. As in dense_viper.py:
# written for 32-bit machine ints, bytes read unsigned. Measured on qemu-m3 over the 650-1000-1000-6 model, 80% pruned
# (`microdx bench models`, speakerid-csr): 40.5 instructions per MAC streamed from /flash (47.0 on qemu-m0), of which
# about 17 are outside this module (copying 3 bytes per weight into RAM); 23.6 (24.5) with values and indices read in
# place from a memory-mapped ROMFS image (udx.inplace); 65.6 with the earlier single-function form.
# How (viper's .mpy code keeps only 2 locals in registers, r4 and r5, and evaluates every binary op through r1):
# - one call per tile to _rows, whose first two parameters (acc, xa) are those 2 register locals; the
#   value and index pointers live on the stack (one load each per weight);
# - no sign extension of the gathered input, which cost 7 instructions per weight: _rows turns the input buffer x
#   into u = x + 128 (x ^ 0x80 per byte, a word at a time) for the tile and back afterwards, and
#   sum((v - 128) * x) = sum((v - 128) * u) - 128 * sum(v - 128), the last from a per-row sum of the stored values;
# - the gather is ptr8(index)[xa]: one ldrb with xa as the register offset.
# Per stored weight: 12 instructions for the product and its sum, about 1.5 of loop control, about 3.5 for the row's
# sum of values; per tile the two flips of x (the whole buffer: its length, not the layer's inputs, is known here),
# the calls and the requantization.
# Every partial sum stays inside int32: at most 128 * 128 per weight for the correction plus 128 * 255 per weight,
# below the quantizer's ACC_PER_INPUT (ops/dense.py). Row pointers are checked before any row is computed (returns
# the first bad one, as the reference does, and x is then untouched); input indices were checked below n when the
# model was opened (udx.sparse.SparseI8.verify). x must be writable (udx.Model passes its own activation buffer).
import micropython


@micropython.viper
def _rows(acc: int, xa: int, sa: int, p: int, isz: int, n: int, ia: int, last: int):
    # Every row of the tile, between two flips of the n input bytes at xa (the loop runs twice: flip, rows, flip).
    # Slots 1..r at sa (up to `last`, slot r) hold each row's end as an offset from the first value, at address p;
    # its index is at address ia; row j's sum replaces slot j. acc and xa come first: the two locals viper keeps in
    # registers (in .mpy code), so the value and index pointers p and q live on the stack, one load each per weight.
    x0 = xa
    d = ia - p - p   # the index of the value at p: at p + p + d (address arithmetic wraps alike in 32 bits)
    if isz == 1:
        d = ia - p   # 1-byte indices: at p + d
    p0 = p
    m = 0x808080
    m |= m << 8                   # 0x80808080, built at run time (a literal that big is not a small int)
    done = 0
    while True:
        acc = m
        xa = x0
        e = xa + n              # x ^= 0x80 on each of the n bytes at xa (int8 x <-> u8 x + 128), a word at a time
        while xa < e and (xa & 3):
            ptr8(xa)[0] = ptr8(xa)[0] ^ 0x80
            xa += 1
        e4 = e - 16
        while xa <= e4:
            ptr32(xa)[0] = ptr32(xa)[0] ^ acc
            ptr32(xa)[1] = ptr32(xa)[1] ^ acc
            ptr32(xa)[2] = ptr32(xa)[2] ^ acc
            ptr32(xa)[3] = ptr32(xa)[3] ^ acc
            xa += 16
        while xa < e:
            ptr8(xa)[0] = ptr8(xa)[0] ^ 0x80
            xa += 1
        if done:
            return
        done = 1
        while sa < last:
            e = ptr32(sa)[1] + p0
            xa = p             # xa walks the values for their sum (3 instructions each), then is the inputs again
            acc = 0
            e16 = e - 16
            while xa <= e16:
                acc = (ptr8(xa)[0] + ptr8(xa)[1] + ptr8(xa)[2] + ptr8(xa)[3] + ptr8(xa)[4] + ptr8(xa)[5]
                       + ptr8(xa)[6] + ptr8(xa)[7] + ptr8(xa)[8] + ptr8(xa)[9] + ptr8(xa)[10] + ptr8(xa)[11]
                       + ptr8(xa)[12] + ptr8(xa)[13] + ptr8(xa)[14] + ptr8(xa)[15]) + acc
                xa += 16
            e4 = e - 4
            while xa <= e4:
                acc = (ptr8(xa)[0] + ptr8(xa)[1] + ptr8(xa)[2] + ptr8(xa)[3]) + acc
                xa += 4
            while xa < e:
                acc = ptr8(xa)[0] + acc
                xa += 1
            acc = ((e - p) * 128 - acc) * 128   # -128 * sum(v - 128): u = x + 128 below
            xa = x0
            if isz == 2:
                q = p + p + d
                while p <= e16:   # `acc = t + acc` keeps acc in its register: 2 instructions, against 4 for a chain
                    acc = (ptr8(p)[0] - 128) * ptr8(ptr16(q)[0])[xa] + acc
                    acc = (ptr8(p)[1] - 128) * ptr8(ptr16(q)[1])[xa] + acc
                    acc = (ptr8(p)[2] - 128) * ptr8(ptr16(q)[2])[xa] + acc
                    acc = (ptr8(p)[3] - 128) * ptr8(ptr16(q)[3])[xa] + acc
                    acc = (ptr8(p)[4] - 128) * ptr8(ptr16(q)[4])[xa] + acc
                    acc = (ptr8(p)[5] - 128) * ptr8(ptr16(q)[5])[xa] + acc
                    acc = (ptr8(p)[6] - 128) * ptr8(ptr16(q)[6])[xa] + acc
                    acc = (ptr8(p)[7] - 128) * ptr8(ptr16(q)[7])[xa] + acc
                    acc = (ptr8(p)[8] - 128) * ptr8(ptr16(q)[8])[xa] + acc
                    acc = (ptr8(p)[9] - 128) * ptr8(ptr16(q)[9])[xa] + acc
                    acc = (ptr8(p)[10] - 128) * ptr8(ptr16(q)[10])[xa] + acc
                    acc = (ptr8(p)[11] - 128) * ptr8(ptr16(q)[11])[xa] + acc
                    acc = (ptr8(p)[12] - 128) * ptr8(ptr16(q)[12])[xa] + acc
                    acc = (ptr8(p)[13] - 128) * ptr8(ptr16(q)[13])[xa] + acc
                    acc = (ptr8(p)[14] - 128) * ptr8(ptr16(q)[14])[xa] + acc
                    acc = (ptr8(p)[15] - 128) * ptr8(ptr16(q)[15])[xa] + acc
                    p += 16
                    q += 32
                while p <= e4:
                    acc = (ptr8(p)[0] - 128) * ptr8(ptr16(q)[0])[xa] + acc
                    acc = (ptr8(p)[1] - 128) * ptr8(ptr16(q)[1])[xa] + acc
                    acc = (ptr8(p)[2] - 128) * ptr8(ptr16(q)[2])[xa] + acc
                    acc = (ptr8(p)[3] - 128) * ptr8(ptr16(q)[3])[xa] + acc
                    p += 4
                    q += 8
                while p < e:
                    acc = (ptr8(p)[0] - 128) * ptr8(ptr16(q)[0])[xa] + acc
                    p += 1
                    q += 2
            else:
                q = p + d
                while p <= e4:    # short rows (at most 256 inputs): 4 at a time
                    acc = (ptr8(p)[0] - 128) * ptr8(ptr8(q)[0])[xa] + acc
                    acc = (ptr8(p)[1] - 128) * ptr8(ptr8(q)[1])[xa] + acc
                    acc = (ptr8(p)[2] - 128) * ptr8(ptr8(q)[2])[xa] + acc
                    acc = (ptr8(p)[3] - 128) * ptr8(ptr8(q)[3])[xa] + acc
                    p += 4
                    q += 4
                while p < e:
                    acc = (ptr8(p)[0] - 128) * ptr8(ptr8(q)[0])[xa] + acc
                    p += 1
                    q += 1
            ptr32(sa)[0] = acc
            sa += 4


@micropython.viper
def sparse_tile(scratch, x, y, r: int, row: int, p0: int, nv: int, isz: int, zero: int, lo: int, vals, vo: int,
                io: int, bo: int) -> int:
    # Checks every row pointer first, turning each into the row's end offset _rows walks to; then one call for the
    # rows (x flipped and back); then the requantization. Values and indices are in `vals` (the scratch, or the
    # memory-mapped blob: read only) at byte offsets vo and io; the biases and multipliers in the scratch from bo.
    s = ptr8(scratch)
    sa = int(s)
    va = int(ptr8(vals))
    k = 0
    j = 1
    while j <= r:
        a = 4 * j
        e = (s[a] | (s[a + 1] << 8) | (s[a + 2] << 16) | (((s[a + 3] ^ 0x80) - 0x80) << 24)) - p0
        if e < k or e > nv:
            return j
        k = e
        ptr32(sa + a)[0] = e   # offsets, not addresses: a slot is 32 bits, an address may not be
        j += 1
    xa = int(ptr8(x))
    n = int(len(x))
    _rows(0, xa, sa, va + vo, isz, n, va + io, sa + 4 * r)
    yp = ptr8(y)
    j = 0
    while j < r:
        kb = bo + 4 * j   # the requantization of udx.dense.requant_row, inline as in dense_viper.py
        a = 4 * j   # row j's sum, read back sign-extended (ptr32 reads unsigned where ints are 64-bit)
        acc = ((s[a] | (s[a + 1] << 8) | (s[a + 2] << 16) | (((s[a + 3] ^ 0x80) - 0x80) << 24))
               + (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)))
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
