"""Data files: .npz with `x` (N, features), float or int, and optional `y` (N,) integer labels."""
from __future__ import annotations

import numpy as np

from microdx.errors import InputShapeError


def load(path, need_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y) from an .npz data file; y is None when absent and not needed."""
    with np.load(path, allow_pickle=False) as z:
        if "x" not in z:
            raise InputShapeError(f"{path}: no 'x' array (data files hold x: (N, features) and optional y: (N,))")
        x = z["x"]
        y = z["y"] if "y" in z else None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise InputShapeError(f"{path}: x has shape {x.shape}; expected (N, features)")
    if y is None and need_labels:
        raise InputShapeError(f"{path}: no 'y' labels array; accuracy needs labels")
    if y is not None and (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)):
        raise InputShapeError(f"{path}: y must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    return x, y


def save(path, x, y=None) -> None:
    """Write a data file."""
    arrays = {"x": np.asarray(x)}
    if y is not None:
        arrays["y"] = np.asarray(y)
    np.savez(path, **arrays)
