# Arm Thumb (asm_thumb) CSR int8 tile: the integers of udx.sparse.sparse_tile, its reference, at about 7 instructions
# per stored weight on a Cortex-M0/M3 (the viper twin takes about 20: stack traffic and operand moves around each
# gather).
# One asm call per tile, not per row (a call from viper costs about 1,000 instructions, more than a 50-weight row):
# rows_u8/rows_u16 walk every row of the tile and leave each row's sum of (v - 128) * x[idx] in the row's own row-
# pointer slot, which the viper caller then requantizes. armv6m only (the RP2040 runs it; qemu-m0 rejects Thumb-2).
# Two armv6m instructions the inline assembler does not spell are emitted with data(2, ...), encoded per the ARMv6-M
# Architecture Reference Manual: LDRSB Rt, [Rn, Rm] (0x5600 | Rm << 6 | Rn << 3 | Rt), the gathered int8 input, sign-
# extended in the load. Sums stay inside int32: at most 128 * 128 per weight, the bound the quantizer keeps.
import micropython


@micropython.asm_thumb
def rows_u8(r0, r1, r2, r3):
    # r0: row-pointer slots (slot 0: the address of slot r; slots 1..r: int32 absolute end addresses of each row's
    # values), r1: int8 inputs, r2: first value (u8 offset-binary), r3: first index (u8)
    mov(r5, r8)            # r8 is callee-saved: keep the caller's value
    push({r5})
    ldr(r5, [r0, 0])
    mov(r8, r5)            # the last slot's address, which the caller left in slot 0: the loop ends there
    label(ROW)
    ldr(r7, [r0, 4])       # this row's end
    mov(r4, 0)
    label(QUAD)
    add(r5, r2, 4)
    cmp(r5, r7)
    bhi(TAIL)              # fewer than 4 weights left in this row
    ldrb(r5, [r2, 0])
    ldrb(r6, [r3, 0])
    data(2, 0x578E)        # ldrsb r6, [r1, r6]
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 1])
    ldrb(r6, [r3, 1])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 2])
    ldrb(r6, [r3, 2])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 3])
    ldrb(r6, [r3, 3])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    add(r2, 4)
    add(r3, 4)
    b(QUAD)
    label(TAIL)
    cmp(r2, r7)
    beq(DONE)
    ldrb(r5, [r2, 0])
    ldrb(r6, [r3, 0])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    add(r2, 1)
    add(r3, 1)
    b(TAIL)
    label(DONE)
    str(r4, [r0, 0])       # the row's sum replaces its start pointer, which is no longer needed
    add(r0, 4)
    mov(r5, r8)
    cmp(r0, r5)
    bne(ROW)
    pop({r5})
    mov(r8, r5)


@micropython.asm_thumb
def rows_u16(r0, r1, r2, r3):
    # as rows_u8, with 2-byte little-endian indices at r3, an even address (udx.sparse.index_offset)
    mov(r5, r8)
    push({r5})
    ldr(r5, [r0, 0])
    mov(r8, r5)
    label(ROW)
    ldr(r7, [r0, 4])
    mov(r4, 0)
    label(QUAD)
    add(r5, r2, 4)
    cmp(r5, r7)
    bhi(TAIL)
    ldrb(r5, [r2, 0])
    ldrh(r6, [r3, 0])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 1])
    ldrh(r6, [r3, 2])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 2])
    ldrh(r6, [r3, 4])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    ldrb(r5, [r2, 3])
    ldrh(r6, [r3, 6])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    add(r2, 4)
    add(r3, 8)
    b(QUAD)
    label(TAIL)
    cmp(r2, r7)
    beq(DONE)
    ldrb(r5, [r2, 0])
    ldrh(r6, [r3, 0])
    data(2, 0x578E)
    sub(r5, 128)
    mul(r5, r6)
    add(r4, r4, r5)
    add(r2, 1)
    add(r3, 2)
    b(TAIL)
    label(DONE)
    str(r4, [r0, 0])
    add(r0, 4)
    mov(r5, r8)
    cmp(r0, r5)
    bne(ROW)
    pop({r5})
    mov(r8, r5)


@micropython.viper
def sparse_tile(scratch, x, y, r: int, row: int, p0: int, nv: int, isz: int, zero: int, lo: int, vals, vo: int,
                io: int, bo: int) -> int:
    # Checks every row pointer first (returns the first bad one, as the reference does, before any row is computed),
    # turning each into the absolute end address rows_u8/rows_u16 walk to; then one asm call; then requantization.
    s = ptr8(scratch)
    sa = int(s)
    va = int(ptr8(vals))   # values and indices: the scratch, or the memory-mapped blob (read only)
    pv = va + vo
    k = 0
    j = 1
    while j <= r:
        a = 4 * j
        e = (s[a] | (s[a + 1] << 8) | (s[a + 2] << 16) | (((s[a + 3] ^ 0x80) - 0x80) << 24)) - p0
        if e < k or e > nv:
            return j
        k = e
        ptr32(sa + a)[0] = pv + e
        j += 1
    xa = int(ptr8(x))
    ptr32(sa)[0] = sa + 4 * r
    if isz == 1:
        rows_u8(sa, xa, pv, va + io)
    else:
        rows_u16(sa, xa, pv, va + io)
    yp = ptr8(y)
    acc32 = ptr32(sa)
    j = 0
    while j < r:
        kb = bo + 4 * j   # the requantization of udx.dense.requant_row, inline as in dense_viper.py
        acc = acc32[j] + (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24))
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
