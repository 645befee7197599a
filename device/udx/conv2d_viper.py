# Viper (native code) int8 conv tile: the integers of udx.conv2d.conv_tile, its reference. As in dense_viper.py:
# written for 32-bit machine ints (the host reference asserts every partial sum inside int32), bytes read unsigned
# and sign-extended branch-free, the requantization inline (a call to another viper function costs ~2,500
# instructions). In HWC a kernel row's real inputs are one contiguous run of span bytes, walked 4 at a time.
import micropython


@micropython.viper
def conv_tile(scratch, x, y, geo, o: int, r: int, z: int, zero: int, lo: int, m: int):
    s = ptr8(scratch)
    yp = ptr8(y)
    xb = int(ptr8(x))
    sb = int(s)
    h = int(geo[0])
    w = int(geo[1])
    c = int(geo[2])
    ho = int(geo[3])
    wo = int(geo[4])
    kh = int(geo[5])
    kw = int(geo[6])
    sh = int(geo[7])
    sw = int(geo[8])
    pt = int(geo[9])
    pl = int(geo[10])
    hi = int(geo[11])
    rq = int(geo[12])
    run = geo   # an object, replaced by the requantization under rq (viper: a local keeps one type)
    if rq:   # only models imported from .tflite load it: its code costs heap
        from udx.tflq_viper import requant_run as run
    k = kh * kw * c
    kwc = kw * c
    wc = w * c
    step = kwc - wc
    cells = kh * kw
    wn = (r * k + 3) & ~3   # the biases: udx.dense.tile_bytes
    p = o
    oy = 0
    while oy < ho:
        iy = oy * sh - pt
        y0 = 0
        if iy < 0:
            y0 = 0 - iy
        y1 = kh
        if h - iy < kh:
            y1 = h - iy
        ny = y1 - y0
        ox = 0
        while ox < wo:
            ix = ox * sw - pl
            x0 = 0
            if ix < 0:
                x0 = 0 - ix
            x1 = kw
            if w - ix < kw:
                x1 = w - ix
            span = (x1 - x0) * c
            span4 = span & ~3
            xa = ((iy + y0) * w + ix + x0) * c
            da = y0 * kwc + x0 * c - xa
            pad = cells - ny * (x1 - x0)
            ssum = pad * c * z
            xi = xa
            t = 0
            while t < ny:
                a = xb + xi
                e = a + span
                while a < e:
                    ssum += (ptr8(a)[0] ^ 0x80) - 0x80
                    a += 1
                xi += wc
                t += 1
            ssum = ssum << 7
            j = 0
            while j < r:
                jb = j * k
                acc = 0
                xi = xa
                d = da + jb
                t = 0
                while t < ny:
                    a = xb + xi             # input address
                    wa = sb + xi + d        # weight address
                    e = a + span4
                    while a < e:
                        xq = ptr8(a)
                        wq = ptr8(wa)
                        acc += (wq[0] * ((xq[0] ^ 0x80) - 0x80) + wq[1] * ((xq[1] ^ 0x80) - 0x80)
                                + wq[2] * ((xq[2] ^ 0x80) - 0x80) + wq[3] * ((xq[3] ^ 0x80) - 0x80))
                        a += 4
                        wa += 4
                    e = xb + xi + span
                    while a < e:
                        acc += ptr8(wa)[0] * ((ptr8(a)[0] ^ 0x80) - 0x80)
                        a += 1
                        wa += 1
                    xi += wc
                    d += step
                    t += 1
                if pad != 0 and z != 0:   # border pixels: padded cells add in_zero times their weights
                    ps = 0
                    ky = 0
                    while ky < kh:
                        a = jb + ky * kwc
                        if ky < y0 or ky >= y1:
                            e = a + kwc
                            while a < e:
                                ps += s[a]
                                a += 1
                        else:
                            e = a + x0 * c
                            i = a
                            while i < e:
                                ps += s[i]
                                i += 1
                            i = a + x1 * c
                            e = a + kwc
                            while i < e:
                                ps += s[i]
                                i += 1
                        ky += 1
                    acc += z * ps
                kb = wn + 4 * j
                acc += (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)) - ssum
                if rq:   # TFLite's requantization: keep the accumulator, requantize the pixel below
                    a = kb + 12 * r
                    s[a] = acc
                    s[a + 1] = acc >> 8
                    s[a + 2] = acc >> 16
                    s[a + 3] = acc >> 24
                else:
                    kq = kb + 4 * r
                    mult = s[kq] | (s[kq + 1] << 8)
                    sh2 = s[kq + 2]
                    v = ((((acc >> 16) * mult) + (((acc & 0xFFFF) * mult) >> 16) + (1 << (sh2 - 17))) >> (sh2 - 16)) + zero
                    if v < lo:
                        v = lo
                    if v > hi:
                        v = hi
                    yp[p + j] = v
                j += 1
            if rq:
                run(scratch, wn + 12 * r, wn + 4 * r, r, y, p, zero, lo, hi, rq)
            p += m
            ox += 1
        oy += 1
