# The MFCC front-end through ulab (CircuitPython and ulab firmwares without the native emitter): one frame with
# ulab's C FFT and dot in floating point, the float pipeline that udx/frontend.py's integers approximate
# (microdx.features.fixed_mfcc.frames_float, with the blob's own Q15 mel weights and Q14 window and DCT), rounded to
# the same Q8 integers. NOT bit-exact with the integer path: on float32 firmwares its features differ from the host's
# integer reference by a few Q8 units (tests/test_frontend_ulab.py states the measured tolerance); chosen only under
# the ulab backend (no native emitter), where the pure-Python integer path, 5.2 M instructions per 10 ms frame on
# qemu-m3, cannot keep up with a microphone; measured 7-10x faster than it on CircuitPython (wall time).
from ulab import numpy as np

_LN2 = 0.6931471805599453


def _prepare(fe):
    """Float copies of the tables, made once per Frontend: window, mel weights per filter, DCT."""
    win = np.array(fe.win, dtype=np.float) / 16384
    mels = []
    at = 0
    for m in range(fe.n_mels):
        start = fe.spans[2 * m]
        count = fe.spans[2 * m + 1]
        mels.append((start, count, np.array(fe.mel_w[at:at + count], dtype=np.float) / 32768))
        at += count
    dct = np.array(fe.dct, dtype=np.float).reshape((fe.n_mfcc, fe.n_mels)) / 16384
    # |FFT / n_fft|^2 / 2**5: the integer path's units (its shifts are undone in the log domain)
    fe.ulab = (win, mels, dct, 1.0 / (fe.n_fft * fe.n_fft * 32), fe.pre / 32768)
    return fe.ulab


def frame(fe, x, at, prev, out, out_at):
    """out[out_at:out_at + n_mfcc] = the MFCCs of the frame x[at:at + frame_len] in Q8 log2 units, as
    udx.frontend.Frontend.frame (whose integers these approximate)."""
    win, mels, dct, scale, pre = fe.ulab if hasattr(fe, "ulab") else _prepare(fe)
    fl = fe.frame_len
    s = np.array(x[at:at + fl], dtype=np.float)
    e = s.copy()
    e[1:] = s[1:] - s[:-1] * pre
    e[0] = s[0] - prev * pre
    re = np.zeros(fe.n_fft)
    re[:fl] = e * win
    f = np.fft.fft(re)
    if isinstance(f, tuple):   # CircuitPython's ulab: (real, imaginary)
        r, i = f
    else:                      # complex-capable ulab builds
        r, i = np.real(f), np.imag(f)
    half = fe.n_fft // 2 + 1
    power = (r[:half] * r[:half] + i[:half] * i[:half]) * scale
    logs = np.zeros(fe.n_mels)
    for m in range(fe.n_mels):
        start, count, w = mels[m]
        v = np.dot(power[start:start + count], w) if count else 0.0
        logs[m] = np.log(v) / _LN2 if v > 1.0 else 0.0   # log2 floored at 0, as the integer path
    c = np.dot(dct, logs)
    for j in range(fe.n_mfcc):
        out[out_at + j] = int(round(c[j] * 256))
