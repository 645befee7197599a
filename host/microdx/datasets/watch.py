"""seglearn's smartwatch exercise dataset (seglearn 1.2.5, `seglearn/data/watch_dataset.npy`; Burns et al.,
arXiv:1802.01489): 140 recordings of 6-axis IMU data (accelerometer ax, ay, az in g; gyroscope wx, wy, wz), 50 Hz,
947-2618 samples each, from 10 subjects doing sets of 7 shoulder exercises with each arm (7 x 2 per subject).

Read in place, without importing seglearn (it pulls old dependencies): from the .npy itself, from the seglearn
1.2.5 wheel (a zip, read with zipfile, nothing extracted), or beside an installed seglearn package found with
importlib (the package is located, never imported).
"""
from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path

import numpy as np

from microdx.errors import MicrodxError

MEMBER = "seglearn/data/watch_dataset.npy"
RATE_HZ = 50
HINT = "pass --data PATH to watch_dataset.npy or to the seglearn 1.2.5 wheel (seglearn-1.2.5-py3-none-any.whl)"


def default_path() -> Path:
    """watch_dataset.npy beside an installed seglearn package (located with importlib, not imported)."""
    try:
        spec = importlib.util.find_spec("seglearn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise MicrodxError(f"seglearn's watch dataset not found (seglearn is not installed): {HINT}")
    path = Path(spec.origin).parent / "data" / "watch_dataset.npy"
    if not path.is_file():
        raise MicrodxError(f"{path} not found: the installed seglearn does not ship the watch dataset; {HINT}")
    return path


def _read(path: Path) -> dict:
    if not path.exists():
        raise MicrodxError(f"{path} not found: {HINT}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                if MEMBER not in z.namelist():
                    raise MicrodxError(f"{path} holds no {MEMBER}: is it the seglearn 1.2.5 wheel? {HINT}")
                raw = np.load(io.BytesIO(z.read(MEMBER)), allow_pickle=True)
        else:
            raw = np.load(path, allow_pickle=True)
    except MicrodxError:
        raise
    except Exception as e:
        raise MicrodxError(f"{path} could not be read as watch_dataset.npy or a seglearn wheel "
                           f"({type(e).__name__}: {str(e)[:120]}); {HINT}") from None
    d = raw.item() if isinstance(raw, np.ndarray) and raw.dtype == object and raw.shape == () else raw
    if not isinstance(d, dict) or not {"X", "y", "subject"} <= set(d):
        raise MicrodxError(f"{path} is not seglearn's watch dataset (expected a dict with X, y, subject, ...)")
    return d


def load(path=None) -> dict:
    """The dataset as a dict:

    X: list of (n_i, 6) float64 arrays (ax, ay, az, wx, wy, wz at 50 Hz); y: (140,) int64 exercise index into
    y_labels (PEN, ABD, FEL, IR, ER, TRAP, ROW); subject: (140,) int64 subject numbers 1-10; side: (140,) int64
    (1 right, 0 left); X_labels, y_labels: lists of names. `path`: the .npy, the seglearn wheel, or None (beside an
    installed seglearn). MicrodxError when it cannot be found or read.
    """
    path = default_path() if path is None else Path(path)
    d = _read(path)
    X = [np.asarray(s, dtype=np.float64) for s in d["X"]]
    if any(s.ndim != 2 or s.shape[1] != 6 for s in X):
        raise MicrodxError(f"{path}: X must hold (n, 6) series")
    return {"X": X, "y": np.asarray(d["y"], dtype=np.int64), "subject": np.asarray(d["subject"], dtype=np.int64),
            "side": np.asarray(d.get("side", np.zeros(len(X))), dtype=np.int64),
            "X_labels": [str(s) for s in d.get("X_labels", ["ax", "ay", "az", "wx", "wy", "wz"])],
            "y_labels": [str(s) for s in d["y_labels"]], "path": str(path)}


def windows(series: np.ndarray, width: int, step: int) -> np.ndarray:
    """(k, width, 6) windows of one (n, 6) series, starting every `step` samples (a tail shorter than width is
    dropped)."""
    if len(series) < width:
        return np.empty((0, width, series.shape[1]))
    starts = range(0, len(series) - width + 1, step)
    return np.stack([series[s:s + width] for s in starts])
