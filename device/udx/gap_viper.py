# Viper (native code) global average pooling: the integers of udx.gap.GapI8.forward, its reference: each channel's
# sum of codes over n = H*W pixels, rounded half away from zero, written for 32-bit machine ints.
import micropython


@micropython.viper
def gap_i8(x, y, n: int, c: int):
    xp = ptr8(x)
    yp = ptr8(y)
    half = n >> 1
    ch = 0
    while ch < c:
        s = 0
        i = ch
        e = n * c
        while i < e:
            s += (xp[i] ^ 0x80) - 0x80
            i += c
        if s >= 0:
            yp[ch] = (s + half) // n
        else:
            yp[ch] = 0 - ((half - s) // n)
        ch += 1
