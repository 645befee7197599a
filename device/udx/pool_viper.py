# Viper (native code) int8 pooling: the integers of udx.pool.pool_tile, its reference (32-bit machine ints; sums of
# at most 2^20 codes).
import micropython


@micropython.viper
def pool_tile(x, y, geo, is_max: int, lo: int):
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
            n = (y1 - y0) * (x1 - x0)
            out = (oy * wo + ox) * c
            ch = 0
            while ch < c:
                s = 0
                if is_max:
                    s = -128
                ky = y0
                while ky < y1:
                    xi = ((iy + ky) * w + ix + x0) * c + ch
                    e = xi + (x1 - x0) * c
                    while xi < e:
                        v = (xp[xi] ^ 0x80) - 0x80
                        if is_max:
                            if v > s:
                                s = v
                        else:
                            s += v
                        xi += c
                    ky += 1
                if not is_max:
                    if s >= 0:
                        s = (s + (n >> 1)) // n
                    else:
                        s = 0 - (((n >> 1) - s) // n)
                if s < lo:
                    s = lo
                yp[out + ch] = s
                ch += 1
            ox += 1
        oy += 1
