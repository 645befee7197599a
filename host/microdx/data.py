"""Data files (docs/npz-schema.md): an .npz with real-valued features `x` (any numeric dtype) or already-quantized
int8 codes `x_q`, and optional labels `y` (class indices, or values of the blob's labels)."""
from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microdx.errors import DataFileError

# what a damaged or foreign file makes np.load / NpzFile raise
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass
class Data:
    path: str
    x: np.ndarray | None      # (N, features) float64: real values, whatever dtype the file stored them in
    x_q: np.ndarray | None    # (N, features) int8 codes, used as they are (int8 blobs only)
    y: np.ndarray | None      # (N,) labels as stored; class_indices checks they are integers or strings

    @property
    def rows(self) -> np.ndarray:
        """The inputs, x or x_q, whichever the file holds."""
        return self.x if self.x is not None else self.x_q

    @property
    def key(self) -> str:
        return "x" if self.x is not None else "x_q"

    def __iter__(self):   # `x, y = data.load(path)`, as callers wrote it before x_q existed
        return iter((self.rows, self.y))

    def __getitem__(self, i):
        return tuple(self)[i]


def _array(z, key: str, path) -> np.ndarray:
    try:
        return z[key]
    except _READ_ERRORS as e:
        hint = ("it holds Python objects (a pickle): store a plain numeric array, e.g. np.asarray(x, dtype=float)"
                if "pickle" in str(e) else f"{type(e).__name__}: {str(e)[:120]}")
        raise DataFileError(f"{path}: array '{key}' cannot be read: {hint}") from None


def _rows(arr: np.ndarray, key: str, path) -> np.ndarray:
    """`arr` as (N, features); a 1-D array is one row, and (N, *input_shape) rows (e.g. N x 49 x 10 x 1 for a conv
    model) are flattened in row-major order, the HWC order the device's buffers hold."""
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim > 2 and arr.shape[0] > 0:
        arr = arr.reshape(len(arr), -1)
    if arr.ndim != 2:
        raise DataFileError(f"{path}: {key} has shape {arr.shape}; expected (N, features)")
    if len(arr) == 0 or arr.shape[1] == 0:
        raise DataFileError(f"{path}: {key} has shape {arr.shape}: no data (N rows of features, N > 0)")
    return arr


def _features(arr: np.ndarray, path) -> np.ndarray:
    """x checked (numbers, finite) and converted to float64."""
    if arr.dtype.kind not in "iuf":
        raise DataFileError(f"{path}: x has dtype {arr.dtype}; features must be numbers (integer or float)")
    x = arr.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        n = int(bad.sum())
        raise DataFileError(f"{path}: x holds {arr[row, col]} at row {row}, column {col} ({n} non-finite "
                            f"value{'s' if n > 1 else ''} in x); remove or impute them")
    return x


def _labels(arr: np.ndarray, n: int, path) -> np.ndarray:
    """y as (n,): one label per row. Its dtype is checked where labels are used (class_indices): `run` needs
    none, and a regression target (floats) may sit in a file that `run` reads."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 2 and arr.shape[0] == n:
        raise DataFileError(f"{path}: y has shape {arr.shape}; expected ({n},) labels (one-hot? store "
                            f"y.argmax(axis=1))")
    if arr.shape != (n,):
        raise DataFileError(f"{path}: y has shape {arr.shape}; expected one label per row of x: ({n},)")
    return arr.astype(str) if arr.dtype.kind in "US" else arr


def load(path, limit: int | None = None) -> Data:
    """Read and check a data file; only the first `limit` rows if given.

    Raises DataFileError naming the file, the array and, for bad values, the row and column; OSError
    (e.g. FileNotFoundError) when the file cannot be opened at all.
    """
    if Path(path).is_dir():
        raise DataFileError(f"{path} is a directory, not a data .npz file")
    with open(path, "rb") as f:   # np.load takes anything else for a pickle and says so: name what it is instead
        head = f.read(6)
    if not head.startswith((b"PK", b"\x93NUMPY")):
        raise DataFileError(f"{path} is not an .npz file (" + (f"it starts with {head!r}" if head else "it is empty")
                            + "); write data files with np.savez(path, x=..., y=...)")
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except _READ_ERRORS as e:
        raise DataFileError(f"{path} is not a readable .npz data file ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataFileError(f"{path} holds a single .npy array; save data with np.savez(path, x=..., y=...)")
    with z:
        keys = set(z.files)
        if "x" in keys and "x_q" in keys:
            raise DataFileError(f"{path} holds both 'x' (real values) and 'x_q' (int8 codes): keep one, so that "
                                f"what runs is not a guess")
        if "x" not in keys and "x_q" not in keys:
            raise DataFileError(f"{path}: no 'x' array (found: {', '.join(sorted(keys)) or 'nothing'}); data files "
                                f"hold x: (N, features) real values, or x_q: int8 codes, and optional y: (N,) labels")
        key = "x" if "x" in keys else "x_q"
        raw, y = _array(z, key, path), _array(z, "y", path) if "y" in keys else None
    return _checked(path, key, raw, y, limit)


def from_arrays(x, y=None, name: str = "<arrays>") -> Data:
    """Data from in-memory arrays, checked as a file would be: x real-valued features, y optional labels."""
    return _checked(name, "x", np.asarray(x), None if y is None else np.asarray(y), None)


def _checked(path, key: str, raw: np.ndarray, y: np.ndarray | None, limit: int | None) -> Data:
    raw = _rows(raw, key, path)
    y = None if y is None else _labels(y, len(raw), path)[:limit]
    raw = raw[:limit]
    if key == "x":
        return Data(str(path), _features(raw, path), None, y)
    if raw.dtype != np.int8:
        raise DataFileError(f"{path}: x_q has dtype {raw.dtype}; x_q holds int8 codes (dtype int8); real values "
                            f"of any dtype go under 'x'")
    return Data(str(path), None, raw, y)


def _integer_like(labels) -> bool:
    return bool(labels) and all(re.fullmatch(r"[+-]?\d+", str(s).strip()) for s in labels)


def class_indices(y: np.ndarray, labels, n_out: int, path) -> tuple[np.ndarray, str]:
    """Class indices (0 .. n_out-1) of the labels `y`, and how y was read ("indices" or "label values").

    y holds label values when it is a string array, or an integer array while the blob's labels are all
    integers (as scikit-learn's classes are carried, e.g. "1", "3", ... "19"); otherwise class indices.
    DataFileError names the first value that is neither, and its row.
    """
    if y.dtype.kind not in "iuU":
        raise DataFileError(f"{path}: y has dtype {y.dtype}; class labels are integers (class indices: "
                            f"y.astype(int)) or strings (class names)")
    labels = [str(s) for s in labels]
    if y.dtype.kind == "U" or _integer_like(labels):
        if not labels:
            raise DataFileError(f"{path}: y holds class names ({str(y[0])!r}, ...) but the blob has no labels; "
                                f"store class indices 0..{n_out - 1}")
        if y.dtype.kind == "U":
            index = {s: i for i, s in reversed(list(enumerate(labels)))}
            keys = [str(v) for v in y]
        else:
            index = {int(s): i for i, s in reversed(list(enumerate(labels)))}
            keys = [int(v) for v in y]
        missing = [r for r, k in enumerate(keys) if k not in index]
        if missing:
            r = missing[0]
            raise DataFileError(f"{path}: y[{r}] = {keys[r]!r} is not one of the blob's labels "
                                f"({_show(labels)}); y holds label values when y is text or the labels are all "
                                f"integers ({len(missing)} of {len(keys)} rows)")
        return np.array([index[k] for k in keys], dtype=np.int64), "label values"
    bad = np.flatnonzero((y < 0) | (y >= n_out))
    if bad.size:
        r = int(bad[0])
        raise DataFileError(f"{path}: y[{r}] = {int(y[r])} is not a class index of this model (0..{n_out - 1}) "
                            f"({bad.size} of {len(y)} rows)")
    return y.astype(np.int64), "indices"


def is_class_labels(y: np.ndarray | None) -> bool:
    """True if `y` can be class labels (integers or strings), not e.g. a regression target."""
    return y is not None and y.dtype.kind in "iuU"


def _show(labels, most: int = 12) -> str:
    shown = ", ".join(repr(s) for s in labels[:most])
    return shown + (f", ... {len(labels)} in all" if len(labels) > most else "")


def save(path, x, y=None) -> None:
    """Write a data file: x real-valued features (N, features), y optional labels (N,)."""
    arrays = {"x": np.asarray(x)}
    if y is not None:
        arrays["y"] = np.asarray(y)
    np.savez(path, **arrays)
