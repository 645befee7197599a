"""MFCC features of int16 PCM, as the DXTK SpeakerID network takes them: 13 coefficients x 50 frames = 650 inputs.

Frames of 25 ms every 10 ms (at 8 kHz: 200 samples, hop 80), pre-emphasis 0.97, Hamming window, 256-point power
spectrum, 26 triangular mel filters (HTK mel scale, 0 Hz to Nyquist), natural log, DCT-II (orthonormal), the first 13.
A clip is cut or zero-padded at the end to `frames` frames, so every clip gives the same number of features.
"""
from __future__ import annotations

import numpy as np
from scipy.fft import dct


def mel_filterbank(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters spaced evenly on the HTK mel scale from 0 Hz to rate / 2."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges_hz = 700.0 * (10 ** (np.linspace(0.0, mel(rate / 2), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))


def mfcc(pcm: np.ndarray, rate: int = 8000, n_mfcc: int = 13, frames: int = 50, frame_ms: float = 25.0,
         hop_ms: float = 10.0, n_fft: int = 256, n_mels: int = 26) -> np.ndarray:
    """(frames, n_mfcc) MFCCs of mono PCM samples (int16 or float in [-1, 1))."""
    x = np.asarray(pcm, dtype=np.float64)
    if np.issubdtype(np.asarray(pcm).dtype, np.integer):
        x = x / 32768.0
    length, hop = int(rate * frame_ms / 1000), int(rate * hop_ms / 1000)
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    need = length + hop * (frames - 1)
    x = np.pad(x[:need], (0, max(0, need - len(x))))
    idx = np.arange(length)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hamming(length), n_fft)) ** 2 / n_fft
    energies = spec @ mel_filterbank(n_mels, n_fft, rate).T
    return dct(np.log(energies + 1e-10), type=2, norm="ortho", axis=1)[:, :n_mfcc]
