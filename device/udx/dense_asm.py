# Arm Thumb (asm_thumb) inner loop for int8 dense tiles: the integers of udx.dense.dense_tile, its reference, at about
# 8 instructions per MAC on a Cortex-M0 (armv6m: the RP2040's instruction set; qemu-m0 refuses anything else) and M3,
# against about 22 for the viper loop. Loads only on Arm MicroPython builds with the native emitter (elsewhere
# @micropython.asm_thumb does not exist); chosen by the "asm" backend (udx/backends.py). Every partial sum stays
# inside int32 (the host reference asserts it), so 32-bit registers cannot wrap.
import micropython


@micropython.asm_thumb
def dot4(r0, r1, r2):
    # r0: offset-binary u8 weights, r1: int8 inputs, r2: count (a positive multiple of 4); returns sum(w_u * x)
    mov(r3, 0)
    label(LOOP)
    ldrb(r4, [r0, 0])
    ldrb(r5, [r1, 0])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    mul(r4, r5)
    add(r3, r3, r4)
    ldrb(r4, [r0, 1])
    ldrb(r5, [r1, 1])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    mul(r4, r5)
    add(r3, r3, r4)
    ldrb(r4, [r0, 2])
    ldrb(r5, [r1, 2])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    mul(r4, r5)
    add(r3, r3, r4)
    ldrb(r4, [r0, 3])
    ldrb(r5, [r1, 3])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    mul(r4, r5)
    add(r3, r3, r4)
    add(r0, 4)
    add(r1, 4)
    sub(r2, 4)
    bne(LOOP)
    mov(r0, r3)


@micropython.viper
def dense_tile(scratch, x, y, n: int, r: int, row: int, xs: int, zero: int, lo: int):
    s = ptr8(scratch)
    yp = ptr8(y)
    x0 = int(ptr8(x))
    n4 = n & ~3
    kb = (r * n + 3) & ~3   # the biases: udx.dense.tile_bytes
    w = int(s)
    j = 0
    while j < r:
        acc = 0
        if n4:
            acc = int(dot4(w, x0, n4))   # one call per row: ~1,000 instructions, paid back above ~80 inputs
        xa = x0 + n4
        p = w + n4
        end = w + n
        while p < end:
            acc += ptr8(p)[0] * ((ptr8(xa)[0] ^ 0x80) - 0x80)
            p += 1
            xa += 1
        w = end
        # the requantization of udx.dense.requant_row, inline (see dense_viper.py)
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
        j += 1
