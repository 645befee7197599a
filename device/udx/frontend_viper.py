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


@micropython.viper
def frame(fe, x, at: int, prev: int, out, out_at: int):
    # The whole of udx.frontend.Frontend.frame, its reference: window and block shift (computed twice rather than
    # kept in an int32 buffer, since ptr32 loads are not sign-extended on 64-bit ports), this module's fft, power
    # and mel, log, DCT. Every value as there, below 2**30.
    xp = ptr16(x)
    wp = ptr16(fe.win)
    rev = ptr16(fe.rev)
    rp = ptr16(fe.re)
    ip = ptr16(fe.im)
    n = int(fe.n_fft)
    fl = int(fe.frame_len)
    pre = int(fe.pre)
    i = 0
    while i < n:
        rp[i] = 0
        ip[i] = 0
        i += 1
    top = 0
    p = prev
    i = 0
    while i < fl:
        s = (xp[at + i] ^ 0x8000) - 0x8000
        v = ((s - ((pre * p + 16384) >> 15)) * wp[i] + 8192) >> 14
        p = s
        if v < 0:
            v = 0 - v
        if v > top:
            top = v
        i += 1
    shift = 0
    if top:
        while top >= 16384:
            top = top >> 1
            shift -= 1
        while top < 8192:
            top = top << 1
            shift += 1
    p = prev
    i = 0
    while i < fl:
        s = (xp[at + i] ^ 0x8000) - 0x8000
        v = ((s - ((pre * p + 16384) >> 15)) * wp[i] + 8192) >> 14
        p = s
        if shift >= 0:
            v = v << shift
        else:
            v = v >> (0 - shift)
        rp[rev[i]] = v
        i += 1
    halved = int(fft(fe.re, fe.im, fe.cos, fe.sin, n, top))
    sp = ptr16(fe.spans)
    mw = ptr16(fe.mel_w)
    mp = ptr32(fe.mel)
    nm = int(fe.n_mels)
    k = 0
    m = 0
    while m < nm:
        j = int(sp[2 * m])
        e = j + int(sp[2 * m + 1])
        acc = 0
        while j < e:
            r = (rp[j] ^ 0x8000) - 0x8000
            q = (ip[j] ^ 0x8000) - 0x8000
            pw = (r * r + q * q) >> 5
            c = int(mw[k])
            acc += (pw >> 15) * c + (((pw & 0x7FFF) * c) >> 15)
            k += 1
            j += 1
        mp[m] = acc
        m += 1
    lp = ptr16(fe.log2)
    corr = (shift + int(fe.stages) - halved) << 9
    m = 0
    while m < nm:
        e = mp[m] + 1
        bits = 0
        v = e
        while v:
            v = v >> 1
            bits += 1
        t = bits - 1
        if t >= 8:
            f = (e >> (t - 8)) & 0xFF
        else:
            f = (e << (8 - t)) & 0xFF
        v = (t << 8) + int(lp[f]) - corr
        if v < 0:
            v = 0
        mp[m] = v
        m += 1
    dp = ptr16(fe.dct)
    op = ptr32(out)
    nc = int(fe.n_mfcc)
    j = 0
    while j < nc:
        acc = 0
        base = j * nm
        m = 0
        while m < nm:
            acc += ((dp[base + m] ^ 0x8000) - 0x8000) * mp[m]
            m += 1
        op[out_at + j] = acc >> 14
        j += 1
