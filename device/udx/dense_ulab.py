# ulab (the numpy-like C module of CircuitPython and ulab firmwares) int8 dense tile: the integers of
# udx.dense.dense_tile, its reference. ulab has no int32 and its dot returns floats, so exactness is by bound: every
# partial sum of offset-binary u8 weights (0..255) times int8 inputs is an integer of at most 255 * 128 per input,
# and a float holds integers exactly below 2**24 (float32: CircuitPython and most boards) or 2**53 (float64). A dot
# over at most CHUNK inputs therefore returns exactly the reference's sum. Transient heap per tile: the ndarray
# headers (~200 bytes) and r floats of result.
from ulab import numpy as np

# 255 * 128 * 514 = 16,776,960 < 2**24; float64 builds need no split (255 * 128 * MAX_DIM is far below 2**53)
CHUNK = 514 if float(16777217) == 16777216.0 else 1 << 30


def dense_tile(scratch, x, y, n, r, row, xs, zero, lo, hi, rq):
    from udx.dense import requant_row   # here, not at import: udx.dense imports this module
    wn = (r * n + 3) & ~3   # the biases: udx.dense.tile_bytes
    qb = 8 if rq else 4
    w = np.frombuffer(scratch, dtype=np.uint8, count=r * n).reshape((r, n))
    xv = np.frombuffer(x, dtype=np.int8, count=n)
    if n <= CHUNK:
        acc = np.dot(w, xv)
        rest = None
    else:   # exact partial dots of CHUNK columns each, summed as ints
        acc = np.dot(w[:, :CHUNK], xv[:CHUNK])
        rest = [int(v) for v in acc]
        a = CHUNK
        while a < n:
            b = a + CHUNK if a + CHUNK < n else n
            part = np.dot(w[:, a:b], xv[a:b])
            for j in range(r):
                rest[j] += int(part[j])
            a = b
    for j in range(r):
        s = rest[j] if rest is not None else int(acc[j])
        y[row + j] = requant_row(s - xs, scratch, wn + 4 * j, wn + 4 * r + qb * j, zero, lo, hi, rq)
