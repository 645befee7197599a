# Viper (native code) int8 depthwise tile: the integers of udx.dwconv2d.dw_tile, its reference. As in
# dense_viper.py: 32-bit machine ints, bytes read unsigned and sign-extended branch-free, requantization inline.
import micropython


@micropython.viper
def dw_tile(scratch, x, y, geo, o: int, r: int, z: int, zero: int, lo: int, m: int):
    s = ptr8(scratch)
    xp = ptr8(x)
    yp = ptr8(y)
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
    k = kh * kw
    wn = (r * k + 3) & ~3   # the biases: udx.dense.tile_bytes
    oy = 0
    while oy < ho:
        iy = oy * sh - pt
        y0 = 0
        if iy < 0:
            y0 = 0 - iy
        y1 = kh
        if h - iy < kh:
            y1 = h - iy
        ox = 0
        while ox < wo:
            ix = ox * sw - pl
            x0 = 0
            if ix < 0:
                x0 = 0 - ix
            x1 = kw
            if w - ix < kw:
                x1 = w - ix
            nx = x1 - x0
            pad = k - (y1 - y0) * nx
            out = (oy * wo + ox) * c + o
            j = 0
            while j < r:
                acc = 0
                xs = pad * z
                ky = y0
                while ky < y1:
                    xi = ((iy + ky) * w + ix + x0) * c + o + j
                    wi = j * k + ky * kw + x0
                    e = wi + nx
                    while wi < e:
                        v = (xp[xi] ^ 0x80) - 0x80
                        acc += s[wi] * v
                        xs += v
                        xi += c
                        wi += 1
                    ky += 1
                if pad != 0 and z != 0:   # padded cells hold in_zero: it meets the weights outside the real window
                    ps = 0
                    ky = 0
                    while ky < kh:
                        kx = 0
                        while kx < kw:
                            if ky < y0 or ky >= y1 or kx < x0 or kx >= x1:
                                ps += s[j * k + ky * kw + kx]
                            kx += 1
                        ky += 1
                    acc += z * ps
                kb = wn + 4 * j
                acc += (s[kb] | (s[kb + 1] << 8) | (s[kb + 2] << 16) | (((s[kb + 3] ^ 0x80) - 0x80) << 24)) - (xs << 7)
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
                    v2 = ((((acc >> 16) * mult) + (((acc & 0xFFFF) * mult) >> 16) + (1 << (sh2 - 17))) >> (sh2 - 16)) + zero
                    if v2 < lo:
                        v2 = lo
                    if v2 > hi:
                        v2 = hi
                    yp[out + j] = v2
                j += 1
            if rq:
                run(scratch, wn + 12 * r, wn + 4 * r, r, y, out, zero, lo, hi, rq)
            ox += 1
        oy += 1
