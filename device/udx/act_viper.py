# Viper (native code) int8 table lookup: the integers of udx.act.ActI8.forward, its reference. The input byte is
# the int8 code's two's complement, so code + 128 is byte ^ 0x80; the table holds code + 128, so the output byte is
# entry ^ 0x80.
import micropython


@micropython.viper
def lut_i8(t, x, y, n: int):
    tp = ptr8(t)
    xp = ptr8(x)
    yp = ptr8(y)
    i = 0
    while i < n:
        yp[i] = tp[xp[i] ^ 0x80] ^ 0x80
        i += 1
