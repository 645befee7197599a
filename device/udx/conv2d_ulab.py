# ulab int8 conv2d tile: the integers of udx.conv2d.conv_tile, its reference. For each output pixel, each kernel row
# that lies on the input is one contiguous run of inputs (HWC) and of every channel's weights (OHWI): one ulab dot of
# the tile's weight columns with that run gives all r channels' partial sums at C speed. Exact by bound as in
# udx/dense_ulab.py: a window's sum of offset-binary u8 weights times int8 inputs is at most 255 * 128 per weight, so
# windows of at most CHUNK weights (514 on float32 builds) keep every float an exact integer; larger windows (3x3 over
# more than 57 channels on float32) use the reference. Padding (in_zero times the padded cells' weights) is added in
# Python on border pixels only. Transient heap per pixel: a few ndarray views and r floats.
from ulab import numpy as np

from udx.dense_ulab import CHUNK


def conv_tile(scratch, x, y, geo, o, r, z, zero, lo, m):
    from udx.conv2d import _pad_sum, conv_tile as reference   # here: udx.conv2d imports this module
    from udx.dense import requant_row
    h, w, c, ho, wo, kh, kw, sh, sw, pt, pl, hi, rq = geo
    qb = 8 if rq else 4
    k = kh * kw * c
    if k > CHUNK:
        return reference(scratch, x, y, geo, o, r, z, zero, lo, m)
    kwc = kw * c
    wc = w * c
    cells = kh * kw
    wn = (r * k + 3) & ~3   # the biases: udx.dense.tile_bytes
    wt = np.frombuffer(scratch, dtype=np.uint8, count=r * k).reshape((r, k))
    xv = np.frombuffer(x, dtype=np.int8, count=h * wc)
    ones = np.ones(kwc)   # its dot with a run of inputs is their exact sum (ulab's int8 sum would wrap)
    p = o
    for oy in range(ho):
        iy = oy * sh - pt
        y0 = -iy if iy < 0 else 0
        y1 = h - iy if h - iy < kh else kh
        ny = y1 - y0
        for ox in range(wo):
            ix = ox * sw - pl
            x0 = -ix if ix < 0 else 0
            x1 = w - ix if w - ix < kw else kw
            span = (x1 - x0) * c
            xi = ((iy + y0) * w + ix + x0) * c
            a = y0 * kwc + x0 * c
            pad = cells - ny * (x1 - x0)
            s = pad * c * z
            acc = None
            for _ in range(ny):
                run = xv[xi:xi + span]
                part = np.dot(wt[:, a:a + span], run)
                acc = part if acc is None else acc + part
                s += int(np.dot(ones[:span], run))
                xi += wc
                a += kwc
            s <<= 7
            for j in range(r):
                v = int(acc[j])
                if pad and z:
                    v += z * _pad_sum(scratch, j * k, y0, y1, x0 * c, x1 * c, kh, kwc)
                y[p + j] = requant_row(v - s, scratch, wn + 4 * j, wn + 4 * r + qb * j, zero, lo, hi, rq)
            p += m
