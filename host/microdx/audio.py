"""The host side of a blob's audio front-end: the `--frontend` option of `microdx convert`, and the model's int8
inputs from audio (pcm) or from features (x), computed with the integers the device uses (microdx.features.fixed_mfcc
is the exact reference of udx.frontend), so host accuracy is what the board gets from its microphone."""
from __future__ import annotations

import numpy as np

from microdx.errors import DataFileError, InputShapeError, QuantizationError
from microdx.features import fixed_mfcc as fm

KINDS = ("mfcc",)
_INT_FIELDS = ("rate", "frame", "hop", "n_fft", "n_mels", "n_mfcc", "frames")


def parse(text: str, input_size: int) -> tuple[fm.Params, int]:
    """(Params, frames) of a `--frontend` option: "mfcc" (microdx.features.fixed_mfcc.Params defaults, as many
    frames as the model's inputs hold) or "mfcc:rate=8000,frame=200,hop=80,n_fft=256,n_mels=26,n_mfcc=13,frames=50,
    preemph=0.97" (any of them; frame and hop in samples)."""
    kind, _, rest = text.partition(":")
    if kind not in KINDS:
        raise QuantizationError(f"--frontend {text!r}: unknown front-end {kind!r} (known: {', '.join(KINDS)})")
    fields = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in _INT_FIELDS + ("preemph",):
            raise QuantizationError(f"--frontend: {item!r} is not NAME=VALUE with NAME one of "
                                    f"{', '.join(_INT_FIELDS)}, preemph")
        try:
            fields[key] = float(value) if key == "preemph" else int(value)
        except ValueError:
            raise QuantizationError(f"--frontend: {key}={value!r} is not a number") from None
    frames = fields.pop("frames", None)
    p = fm.Params(**fields)
    if not (0 < p.frame <= p.n_fft <= 1024 and p.n_fft & (p.n_fft - 1) == 0 and 0 < p.hop <= p.frame
            and 0 < p.n_mfcc <= p.n_mels <= 128 and 0 <= p.preemph < 1 and 1000 <= p.rate <= 96000):
        raise QuantizationError(f"--frontend {text!r}: needs 0 < hop <= frame <= n_fft <= 1024 (n_fft a power of "
                                f"two), n_mfcc <= n_mels <= 128, 0 <= preemph < 1, a rate of 1-96 kHz")
    if frames is None:
        frames = input_size // p.n_mfcc
    if frames < 1 or frames * p.n_mfcc != input_size:
        raise InputShapeError(f"--frontend: {frames} frames x {p.n_mfcc} MFCCs = {frames * p.n_mfcc} features; "
                              f"the model takes {input_size} inputs")
    return p, frames


def clip_samples(entry: dict) -> int:
    """Samples of audio (int16) that give the model's input: frame + hop x (frames - 1)."""
    return entry["frame"] + entry["hop"] * (entry["frames"] - 1)


def features(pcm: np.ndarray, entry: dict, progress=None) -> np.ndarray:
    """(N, frames x n_mfcc) Q8 integer MFCCs of int16 clips `pcm` (N, samples), each cut or zero-padded at its end to
    clip_samples(entry): what udx.frontend computes from the same audio."""
    p = fm.params_of(entry)
    t = fm.tables(p)
    out = np.empty((len(pcm), entry["frames"] * p.n_mfcc), np.int64)
    for i, clip in enumerate(pcm):
        out[i] = fm.frames_int(clip, p, entry["frames"], t).reshape(-1)
        if progress:
            progress(i + 1)
    return out


def inputs(graph, d, progress=None) -> np.ndarray:
    """The int8 inputs of a graph with a front-end from data `d` (microdx.data.Data): pcm through the integer
    front-end, or features x (log2 units, Q8 features / 256, as the model was trained on) rounded to Q8; then the
    front-end's own mapping to int8 codes (udx.frontend.to_input)."""
    e = graph.frontend
    if d.pcm is not None:
        if d.rate is not None and d.rate != e["rate"]:
            raise DataFileError(f"{d.path}: audio at {d.rate} Hz; the model's front-end takes {e['rate']} Hz "
                                f"(resample it)")
        c = features(d.pcm, e, progress)
    else:
        c = np.round(d.x * 256.0).astype(np.int64)
    return fm.to_input(c, e["in_mult"], e["in_shift"], e["in_zero"])


def pcm_rows(pcm: np.ndarray, entry: dict) -> np.ndarray:
    """(N, clip_samples) int16: each clip cut or zero-padded at its end, as the device is given it."""
    n = clip_samples(entry)
    out = np.zeros((len(pcm), n), np.int16)
    m = min(n, pcm.shape[1])
    out[:, :m] = pcm[:, :m]
    return out
