"""Data files (docs/npz-schema.md): an .npz with real-valued features `x` (any numeric dtype), already-quantized
int8 codes `x_q`, or int16 audio `pcm` (for blobs that carry an audio front-end), and optional labels `y` (class
indices, or values of the blob's labels); or a mono 16-bit .wav file, one row of `pcm`."""
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
    pcm: np.ndarray | None = None   # (N, samples) int16 audio clips, zero-padded to one length
    rate: int | None = None   # the audio's sample rate (Hz) when the file says it (.wav, or `rate` in the .npz)

    @property
    def rows(self) -> np.ndarray:
        """The inputs, x, x_q or pcm, whichever the file holds."""
        return next(a for a in (self.x, self.x_q, self.pcm) if a is not None)

    @property
    def key(self) -> str:
        return "x" if self.x is not None else ("x_q" if self.x_q is not None else "pcm")

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
    if str(path).lower().endswith(".wav"):
        return load_wav(path)
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
        inputs = [k for k in INPUT_KEYS if k in keys]
        if len(inputs) > 1:
            raise DataFileError(f"{path} holds {' and '.join(repr(k) for k in inputs)}: keep one of x (real "
                                f"values), x_q (int8 codes) and pcm (audio), so that what runs is not a guess")
        if not inputs:
            raise DataFileError(f"{path}: no 'x' array (found: {', '.join(sorted(keys)) or 'nothing'}); data files "
                                f"hold x: (N, features) real values, x_q: int8 codes or pcm: (N, samples) int16 "
                                f"audio, and optional y: (N,) labels")
        key = inputs[0]
        raw, y = _array(z, key, path), _array(z, "y", path) if "y" in keys else None
        rate = _rate(_array(z, "rate", path), path) if "rate" in keys else None
    d = _checked(path, key, raw, y, limit)
    d.rate = rate
    return d


INPUT_KEYS = ("x", "x_q", "pcm")


def _rate(arr: np.ndarray, path) -> int:
    if arr.shape not in ((), (1,)) or arr.dtype.kind not in "iu" or not 0 < int(arr.reshape(-1)[0]) < 1 << 20:
        raise DataFileError(f"{path}: rate must be one integer sample rate in Hz, e.g. np.int32(8000)")
    return int(arr.reshape(-1)[0])


def load_wav(path) -> Data:
    """A mono 16-bit PCM .wav file as Data with one row of `pcm` and its sample rate."""
    import warnings

    from scipy.io import wavfile

    try:
        with open(path, "rb") as f, warnings.catch_warnings():   # OSErrors as they are; a damaged file is refused
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, pcm = wavfile.read(f)
    except (ValueError, EOFError) as e:
        raise DataFileError(f"{path} is not a readable .wav file ({type(e).__name__}: {str(e)[:100]})") from None
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        what = f"{pcm.shape[1]} channels" if pcm.ndim == 2 else f"{pcm.dtype} samples"
        raise DataFileError(f"{path}: {what}; the audio front-end takes mono 16-bit PCM (convert it, e.g. with "
                            f"sox IN.wav -b 16 -c 1 OUT.wav)")
    if len(pcm) == 0:
        raise DataFileError(f"{path} holds no samples")
    return Data(str(path), None, None, None, pcm[None, :], int(rate))


def from_arrays(x, y=None, name: str = "<arrays>") -> Data:
    """Data from in-memory arrays, checked as a file would be: x real-valued features, y optional labels."""
    return _checked(name, "x", np.asarray(x), None if y is None else np.asarray(y), None)


def _checked(path, key: str, raw: np.ndarray, y: np.ndarray | None, limit: int | None) -> Data:
    raw = _rows(raw, key, path)
    y = None if y is None else _labels(y, len(raw), path)[:limit]
    raw = raw[:limit]
    if key == "x":
        return Data(str(path), _features(raw, path), None, y)
    if key == "pcm":
        if raw.dtype != np.int16:
            raise DataFileError(f"{path}: pcm has dtype {raw.dtype}; audio clips are int16 samples (N, samples), "
                                f"zero-padded to one length")
        return Data(str(path), None, None, y, raw)
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
