"""JapaneseVowels (UCI; 9 male speakers saying /ae/, 12 LPC cepstrum coefficients per frame, 7-29 frames).

Read from the .ts files inside the sktime 1.2.0 wheel (pip install --no-deps sktime==1.2.0): found
with importlib without importing sktime. Standard split: 270 train, 370 test utterances.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from microdx.errors import MicrodxError

FRAMES = 8   # each utterance is resampled to this many frames


def data_dir() -> Path:
    """Folder holding JapaneseVowels_TRAIN.ts / _TEST.ts."""
    spec = importlib.util.find_spec("sktime")
    if spec is None or spec.origin is None:
        raise MicrodxError("JapaneseVowels ships in the sktime 1.2.0 wheel: pip install --no-deps sktime==1.2.0 "
                           "(or pip install -e '.[dev]')")
    path = Path(spec.origin).parent / "datasets" / "data" / "JapaneseVowels"
    if not path.is_dir():
        raise MicrodxError(f"{path} not found: the installed sktime does not ship JapaneseVowels (need 1.2.0)")
    return path


def read_ts(path) -> tuple[list[np.ndarray], np.ndarray]:
    """Parse a sktime .ts file: list of (frames, 12) arrays and integer labels 0..8."""
    series, labels, in_data = [], [], False
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            in_data = True
            continue
        if not in_data:
            continue
        *dims, label = line.split(":")
        series.append(np.array([[float(v) for v in d.split(",")] for d in dims]).T)
        labels.append(int(label) - 1)
    return series, np.array(labels)


def features(series: list[np.ndarray]) -> np.ndarray:
    """Fixed-length vector per utterance: FRAMES resampled frames (12 each), then per-coefficient mean and std."""
    out = []
    for s in series:
        t = np.linspace(0, len(s) - 1, FRAMES)
        resampled = np.stack([np.interp(t, np.arange(len(s)), s[:, c]) for c in range(s.shape[1])], axis=1)
        out.append(np.concatenate([resampled.ravel(), s.mean(0), s.std(0)]))
    return np.array(out, dtype=np.float64)


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), features standardised with the training set's mean and std."""
    d = data_dir()
    s_tr, y_tr = read_ts(d / "JapaneseVowels_TRAIN.ts")
    s_te, y_te = read_ts(d / "JapaneseVowels_TEST.ts")
    x_tr, x_te = features(s_tr), features(s_te)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8
    return (x_tr - mu) / sd, y_tr, (x_te - mu) / sd, y_te
