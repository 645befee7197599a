# Viper (native code) int8 residual add: the integers of udx.add.add_tile, its reference, through udx/tflq_viper.py's
# requant (three calls per element: an add is a few hundred elements in the models it serves, against thousands of
# MACs per element in the convolutions around it). Written for 32-bit machine ints: (x - zero) << 20 stays below
# 2**28 in magnitude.
import micropython

from udx.tflq_viper import requant


@micropython.viper
def add_tile(q, a, b, y, n: int, za: int, zb: int, zero: int, lo: int, hi: int):
    qp = ptr8(q)
    ap = ptr8(a)
    bp = ptr8(b)
    yp = ptr8(y)
    ma0 = qp[0] | (qp[1] << 8)
    ma1 = qp[2] | (qp[3] << 8)
    sa = (qp[4] ^ 0x80) - 0x80
    mb0 = qp[8] | (qp[9] << 8)
    mb1 = qp[10] | (qp[11] << 8)
    sb = (qp[12] ^ 0x80) - 0x80
    mo0 = qp[16] | (qp[17] << 8)
    mo1 = qp[18] | (qp[19] << 8)
    so = (qp[20] ^ 0x80) - 0x80
    i = 0
    while i < n:
        xa = int(requant((((ap[i] ^ 0x80) - 0x80) - za) << 20, ma0, ma1, sa, 0))
        xb = int(requant((((bp[i] ^ 0x80) - 0x80) - zb) << 20, mb0, mb1, sb, 0))
        v = int(requant(xa + xb, mo0, mo1, so, 0)) + zero
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        yp[i] = v
        i += 1
