"""The integer MFCC front-end: what the device computes from int16 PCM, frame by frame (device/udx/frontend.py), and
its exact host reference (frames_int), beside the float pipeline it approximates (frames_float).

Per frame of `frame` samples every `hop` (8 kHz: 200 and 80, 25 ms every 10 ms), all in integers, every value below
2**30 in magnitude (a 32-bit MCU's small ints: the pure-Python device code allocates nothing; asserted here):
1. pre-emphasis e[n] = x[n] - round(0.97 x[n-1]) (Q15 coefficient; x[-1] is the sample before the frame, 0 at the
   start of a clip, as microdx.features.mfcc pre-emphasises the whole clip);
2. Hamming window (Q14, so that e w stays below 2**30): v[n] = round(e[n] w[n] / 2**14);
3. block floating point: v shifted by s bits (left for quiet frames) so that max |v| lies in [8192, 16384): the FFT
   then keeps 14 bits of precision whatever the level; s is undone in the log domain;
4. n_fft-point radix-2 FFT (zero padded), Q15 twiddles; a stage is halved (arithmetic shift) only when its input's
   largest |re| + |im| reaches 8192, so a complex modulus never reaches 16384 and each product stays below 2**29;
   the halvings are undone in the log domain with s;
5. power P[k] = (re^2 + im^2) >> 5 for k = 0 .. n_fft/2 (below 2**24);
6. mel energies E[m] = sum_k P[k] W[m, k] / 2**15 (triangular HTK-mel weights, Q15), in 15-bit halves of P;
7. log: L[m] = max(0, log2(E[m] + 1) - 2 (s + stages not halved)) in Q8 (a 256-entry table for the fraction's top
   8 bits);
8. DCT-II (orthonormal, Q14): C[j] = sum_m D[j, m] L[m] >> 14, the first n_mfcc. C is log2 units in Q8.

The tables (window, twiddles, mel weights, DCT, log2 fractions) are computed here once and shipped to the device
(blob header or file), so device and host share them exactly. Constant factors (the FFT's 1/n_fft, the >> 5) shift
every log energy by the same amount: they change c0 only, by a constant (the float pipeline divides by n_fft).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from microdx.features.mfcc import mel_filterbank

SMALL = 1 << 30          # MicroPython's small ints on a 32-bit MCU hold |v| < 2**30
BFP_TOP = 1 << 14        # block floating point: max |v| in [BFP_TOP / 2, BFP_TOP)
POWER_SHIFT = 5
LOG_FRAC = 8             # Q8 logs


@dataclass(frozen=True)
class Params:
    """Front-end parameters (they travel in the blob header): sample rate (Hz), frame and hop (samples), FFT size,
    mel filters, coefficients kept, pre-emphasis."""
    rate: int = 8000
    frame: int = 200
    hop: int = 80
    n_fft: int = 256
    n_mels: int = 26
    n_mfcc: int = 13
    preemph: float = 0.97

    def as_dict(self) -> dict:
        return asdict(self)


def _check(what: str, v) -> None:
    a = np.asarray(v)
    if a.size and np.abs(a).max() >= SMALL:
        raise AssertionError(f"front-end {what} reaches {int(np.abs(a).max())}: past a 32-bit MCU's small ints")


def tables(p: Params) -> dict[str, np.ndarray]:
    """The integer tables of the front-end (what the device receives): window w (Q14, frame), twiddles cos/sin
    (Q15, n_fft/2), mel filters as (start bin, count) pairs with their Q15 weights concatenated, DCT (Q14,
    n_mfcc x n_mels), log2 fractions (Q8, 256), and preemph (Q15)."""
    if p.n_fft & (p.n_fft - 1) or p.n_fft < p.frame or p.n_fft > 1024:
        raise ValueError(f"n_fft {p.n_fft}: a power of two from the frame length ({p.frame}) to 1024")
    n = np.arange(p.frame)
    window = np.round((0.54 - 0.46 * np.cos(2 * np.pi * n / (p.frame - 1))) * (1 << 14)).astype(np.int64)
    k = np.arange(p.n_fft // 2)
    cos = np.round(np.cos(2 * np.pi * k / p.n_fft) * 32767).astype(np.int64)
    sin = np.round(np.sin(2 * np.pi * k / p.n_fft) * 32767).astype(np.int64)
    fb = mel_filterbank(p.n_mels, p.n_fft, p.rate)
    q = np.round(fb * 32767).astype(np.int64)
    spans, weights = [], []
    for row in q:
        nz = np.nonzero(row)[0]
        start, stop = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        spans += [start, stop - start]
        weights += row[start:stop].tolist()
    m = np.arange(p.n_mels)
    dct = np.cos(np.pi * (m[None, :] + 0.5) * np.arange(p.n_mfcc)[:, None] / p.n_mels) * np.sqrt(2 / p.n_mels)
    dct[0] /= np.sqrt(2)
    log2 = np.round(np.log2(1 + np.arange(256) / 256) * (1 << LOG_FRAC)).astype(np.int64)
    return {"window": window, "cos": cos, "sin": sin, "mel_spans": np.array(spans, np.int64),
            "mel_w": np.array(weights, np.int64), "dct": np.round(dct * (1 << 14)).astype(np.int64),
            "log2": log2, "preemph": np.array([_preemph_q15(p)], np.int64)}


def _preemph_q15(p: Params) -> int:
    return int(round(p.preemph * 32768))


def frame_windows(pcm: np.ndarray, p: Params, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, frame) int16 samples of each frame and the sample before each (0 before the clip), the clip cut or
    zero-padded to `frames` frames as microdx.features.mfcc does."""
    x = np.asarray(pcm).astype(np.int64).reshape(-1)
    need = p.frame + p.hop * (frames - 1)
    x = np.pad(x[:need], (0, max(0, need - len(x))))
    starts = p.hop * np.arange(frames)
    idx = starts[:, None] + np.arange(p.frame)[None, :]
    prev = np.where(starts > 0, x[np.maximum(starts - 1, 0)], 0)
    return x[idx], prev


def _log2_q8(e: np.ndarray, table: np.ndarray) -> np.ndarray:
    """log2(e) in Q8 for e >= 1: the leading bit's position, and the table entry of the next 8 bits."""
    bits = np.zeros_like(e)
    v = e.copy()
    while (v > 0).any():   # bit length, as the device counts it
        bits += v > 0
        v >>= 1
    top = bits - 1
    frac = np.where(top >= 8, e >> np.maximum(top - 8, 0), e << np.maximum(8 - top, 0)) & 0xFF
    return (top << LOG_FRAC) + table[frac]


def frames_int(pcm: np.ndarray, p: Params, frames: int, t: dict | None = None) -> np.ndarray:
    """(frames, n_mfcc) integer MFCCs (Q8 log2 units) of int16 PCM: exactly what udx.frontend computes."""
    t = t or tables(p)
    x, prev = frame_windows(pcm, p, frames)
    pre = int(t["preemph"][0])
    shifted = np.concatenate([prev[:, None], x[:, :-1]], axis=1)
    e = x - ((pre * shifted + (1 << 14)) >> 15)
    v = (e * t["window"][None, :] + (1 << 13)) >> 14
    _check("windowed frame", e * t["window"][None, :])
    # block floating point: the shift s that puts max |v| in [8192, 16384) (0 for a silent frame)
    top = np.abs(v).max(axis=1)
    s = np.zeros(len(v), np.int64)
    m = top.copy()
    while (m >= BFP_TOP).any():
        big = m >= BFP_TOP
        m = np.where(big, m >> 1, m)
        s -= big
    while ((m > 0) & (m < BFP_TOP // 2)).any():
        small = (m > 0) & (m < BFP_TOP // 2)
        m = np.where(small, m << 1, m)
        s += small
    v = np.where(s[:, None] >= 0, v << np.maximum(s, 0)[:, None], v >> np.maximum(-s, 0)[:, None])
    re = np.zeros((len(v), p.n_fft), np.int64)
    re[:, :p.frame] = v
    im = np.zeros_like(re)
    re, im, halved = _fft(re, im, t["cos"], t["sin"], np.abs(v).max(axis=1))
    stages = p.n_fft.bit_length() - 1
    half = p.n_fft // 2 + 1
    power = (re[:, :half] ** 2 + im[:, :half] ** 2) >> POWER_SHIFT
    _check("power", re[:, :half] ** 2 + im[:, :half] ** 2)
    energies = np.zeros((len(v), p.n_mels), np.int64)
    spans, w = t["mel_spans"], t["mel_w"]
    hi, lo = power >> 15, power & 0x7FFF
    at = 0
    for mel in range(p.n_mels):
        start, count = int(spans[2 * mel]), int(spans[2 * mel + 1])
        ww = w[at:at + count][None, :]
        energies[:, mel] = (hi[:, start:start + count] * ww + ((lo[:, start:start + count] * ww) >> 15)).sum(axis=1)
        at += count
    _check("mel energy", energies)
    # log2 of the energy at the frame's true level (the block and FFT shifts undone), floored at 0
    logs = np.maximum(_log2_q8(energies + 1, t["log2"]) - ((s + stages - halved)[:, None] << (LOG_FRAC + 1)), 0)
    _check("log energy", logs)
    prods = logs[:, None, :] * t["dct"][None, :, :]            # frames, n_mfcc, n_mels
    _check("DCT partial sum", np.cumsum(prods, axis=2))         # the device's running sums
    return prods.sum(axis=2) >> 14


def _fft(re: np.ndarray, im: np.ndarray, cos: np.ndarray, sin: np.ndarray, top: np.ndarray):
    """Radix-2 decimation-in-time FFT of each row, as udx.frontend runs it: bit-reversed input, then butterflies
    a, b -> a + t, a - t with t = b * exp(-2 pi i k / n) in Q15 (each part of the product shifted right 15), a stage
    halved (arithmetic shift) only where its input's largest |re| + |im| (`top`, then tracked per stage) reaches
    8192: a complex modulus then never reaches 16384, so every product stays below 2**29, and quiet or noise-like
    frames keep more bits than halving every stage would. Returns (re, im, stages halved per row)."""
    n = re.shape[1]
    bits = n.bit_length() - 1
    rev = np.array([int(format(i, f"0{bits}b")[::-1], 2) for i in range(n)])
    re, im = re[:, rev].copy(), im[:, rev].copy()
    halved = np.zeros(len(re), np.int64)
    size = 2
    while size <= n:
        half, step = size // 2, n // size
        h = (top >= 8192).astype(np.int64)[:, None]   # this stage halves its outputs
        halved += h[:, 0]
        for start in range(0, n, size):
            for j in range(half):
                wr, wi = int(cos[j * step]), -int(sin[j * step])
                a, b = start + j, start + j + half
                tr = (re[:, b] * wr - im[:, b] * wi) >> 15
                ti = (re[:, b] * wi + im[:, b] * wr) >> 15
                ar, ai = re[:, a].copy(), im[:, a].copy()
                re[:, a], im[:, a] = (ar + tr) >> h[:, 0], (ai + ti) >> h[:, 0]
                re[:, b], im[:, b] = (ar - tr) >> h[:, 0], (ai - ti) >> h[:, 0]
        top = (np.abs(re) + np.abs(im)).max(axis=1)
        _check("FFT value", top * 32767)
        size *= 2
    return re, im, halved


def frames_float(pcm: np.ndarray, p: Params, frames: int) -> np.ndarray:
    """The float pipeline the integers approximate, in their units (log2, before the Q8 scaling): pre-emphasis,
    Hamming, |FFT / n_fft|^2 / 2**5 at the signal's own level, mel, log2 floored at 0, DCT. For stating the integer
    path's error against it (frames_int / 256)."""
    t = tables(p)
    x, prev = frame_windows(pcm, p, frames)
    x = x.astype(np.float64)
    shifted = np.concatenate([prev[:, None], x[:, :-1]], axis=1).astype(np.float64)
    e = x - p.preemph * shifted
    n = np.arange(p.frame)
    v = e * (0.54 - 0.46 * np.cos(2 * np.pi * n / (p.frame - 1)))
    spec = np.abs(np.fft.rfft(v, p.n_fft) / p.n_fft) ** 2 / (1 << POWER_SHIFT)
    energies = spec @ mel_filterbank(p.n_mels, p.n_fft, p.rate).T
    logs = np.maximum(np.log2(energies + 1e-30), 0.0)
    return logs @ (t["dct"] / (1 << 14)).T


def table_bytes(t: dict) -> int:
    """Bytes the tables take on the device: every table is an int16 array there."""
    return sum(2 * len(v.reshape(-1)) for v in t.values())



# --- the front-end in a blob: its parameters, and the model's int8 input from the features ----------------------
MAPPING_BITS = 14   # the feature -> int8 multiplier stays below 2**14: |C| * mult < 2**30 for |C| < 2**16


def input_mapping(scale: float) -> tuple[int, int]:
    """(mult, shift) with mult / 2**shift ~ 1 / (256 scale): an int8 code from a Q8 feature (real value C / 256) by
    q = ((C mult + 2**(shift-1)) >> shift) + zero, the same integers on the host and the device."""
    target = 1.0 / (256.0 * scale)
    shift = 0
    while target * (1 << (shift + 1)) < (1 << MAPPING_BITS) and shift < 40:
        shift += 1
    mult = int(round(target * (1 << shift)))
    if not 0 < mult < (1 << MAPPING_BITS) or shift < 1:
        raise ValueError(f"input scale {scale}: no 14-bit feature mapping (features would saturate int8)")
    return mult, shift


def to_input(c: np.ndarray, mult: int, shift: int, zero: int) -> np.ndarray:
    """int8 codes of Q8 features c (the device's udx.frontend.to_input)."""
    c = np.asarray(c, dtype=np.int64)
    _check("feature mapping", c * mult)
    return np.clip(((c * mult + (1 << (shift - 1))) >> shift) + zero, -128, 127).astype(np.int8)


def spec(p: Params, frames: int, scale: float, zero: int) -> dict:
    """The blob header's `frontend` entry (without its record's offset and length): the parameters, the frames the
    model takes, and the feature mapping to its int8 input of (scale, zero)."""
    mult, shift = input_mapping(scale)
    return {**entry(p, frames), "in_mult": mult, "in_shift": shift, "in_zero": int(zero)}


def entry(p: Params, frames: int) -> dict:
    """The parameters part of a `frontend` entry (no int8 mapping): what frames_int needs through params_of."""
    return {"kind": "mfcc", **{k: v for k, v in p.as_dict().items() if k != "preemph"},
            "preemph_q15": _preemph_q15(p), "frames": int(frames)}


def params_of(entry: dict) -> Params:
    """The Params of a blob's `frontend` entry."""
    return Params(**{k: entry[k] for k in ("rate", "frame", "hop", "n_fft", "n_mels", "n_mfcc")},
                  preemph=entry["preemph_q15"] / 32768)


def record_tensors(p: Params) -> dict[str, np.ndarray]:
    """The front-end record's tensors (int16), which the device reads into its arrays."""
    return {k: v.astype(np.int16) for k, v in tables(p).items()}
