# Viper (native code) FFT of the MFCC front-end: the integers of udx.frontend.Frontend._fft, its reference. Every value
# stays below 2**30 (the host reference asserts it), so 32-bit machine ints cannot wrap; re, im and the twiddles are
# int16 arrays ('h': every FFT value's modulus stays below 16384), read unsigned by ptr16 and sign-extended.
import micropython


@micropython.viper
def fft(re, im, cos, sin, n: int, top: int) -> int:
    rp = ptr16(re)
    ip = ptr16(im)
    cp = ptr16(cos)
    sp = ptr16(sin)
    halved = 0
    size = 2
    while size <= n:
        half = size >> 1
        step = n // size
        h = 0
        if top >= 8192:
            h = 1
        halved += h
        top = 0
        j = 0
        while j < half:
            wr = ((cp[j * step] ^ 0x8000) - 0x8000)
            wi = 0 - ((sp[j * step] ^ 0x8000) - 0x8000)
            a = j
            while a < n:
                b = a + half
                br = (rp[b] ^ 0x8000) - 0x8000
                bi = (ip[b] ^ 0x8000) - 0x8000
                tr = (br * wr - bi * wi) >> 15
                ti = (br * wi + bi * wr) >> 15
                ar = (rp[a] ^ 0x8000) - 0x8000
                ai = (ip[a] ^ 0x8000) - 0x8000
                u = (ar + tr) >> h
                v = (ai + ti) >> h
                rp[a] = u
                ip[a] = v
                if u < 0:
                    u = 0 - u
                if v < 0:
                    v = 0 - v
                if u + v > top:
                    top = u + v
                u = (ar - tr) >> h
                v = (ai - ti) >> h
                rp[b] = u
                ip[b] = v
                if u < 0:
                    u = 0 - u
                if v < 0:
                    v = 0 - v
                if u + v > top:
                    top = u + v
                a += size
            j += 1
        size <<= 1
    return halved
