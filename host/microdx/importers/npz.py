"""The .npz model schema (docs/npz-schema.md): a layer list plus weights, no pickles.

    kinds     string array, one entry per op in execution order: dense | conv2d | relu | softmax | flatten | affine
    {i}.w     float array (out, in) for op i = dense   (note: (out, in), as ONNX Gemm with transB=1)
              float array (out, kh, kw, in) for op i = conv2d, on (H, W, C) activations
    {i}.b     float array (out,)    for op i = dense or conv2d  (optional, zeros if absent)
    {i}.stride, {i}.pad  int arrays (2,) and (4,: top, bottom, left, right) for op i = conv2d (default 1 1, 0 0 0 0)
    {i}.scale, {i}.shift  float arrays (features,) for op i = affine (y = x * scale + shift; folded by clean)
    input_shape  int array (optional for MLPs: default the first dense layer's `in`; (H, W, C) for conv models)
    labels    string array (optional), name  string scalar (optional)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from microdx.errors import ModelFileError, UnsupportedOpError
from microdx.ir import Graph, canonicalize


def _open(path):
    """np.load of an .npz, or ModelFileError naming the file."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not an .npz model file")
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path} is not a readable .npz file ({str(e)[:120]})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} holds a single .npy array, not an .npz archive of named arrays")
    return z


def _array(z, key, path):
    """z[key], or ModelFileError for arrays that need pickles (object arrays) or cannot be read."""
    try:
        return z[key]
    except (ValueError, OSError, EOFError) as e:
        raise ModelFileError(f"{path}: array '{key}' cannot be read ({str(e)[:100]}); store plain numeric or "
                             f"string arrays (see docs/npz-schema.md)") from None


def _numbers(arr, key, path):
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ModelFileError(f"{path}: array '{key}' has dtype {arr.dtype}; weights must be numbers")
    return arr


def load(path) -> Graph:
    """Float Graph from an .npz model file (ModelFileError / UnsupportedOpError name the file and array)."""
    with _open(path) as z:
        if "kinds" not in z:
            raise UnsupportedOpError(f"{path}: no 'kinds' array; see docs/npz-schema.md")
        kinds = _array(z, "kinds", path)
        if kinds.dtype.kind not in "US" or kinds.ndim != 1:
            raise ModelFileError(f"{path}: 'kinds' must be a 1-D string array, got {kinds.dtype} {kinds.shape}")
        ops = []
        for i, kind in enumerate(str(k) for k in kinds):
            tensors = {k.split(".", 1)[1]: _numbers(_array(z, k, path), k, path)
                       for k in z.files if k.startswith(f"{i}.")}
            if kind == "dense" and "w" not in tensors:
                raise UnsupportedOpError(f"{path}: op {i} is dense but '{i}.w' is missing")
            ops.append((kind, f"{kind}{i}", tensors))
        first = next((t for k, _, t in ops if k == "dense"), None)
        if "input_shape" in z:
            shape = tuple(int(d) for d in _numbers(_array(z, "input_shape", path), "input_shape", path).reshape(-1))
        elif first is not None and first["w"].ndim == 2:
            shape = (int(first["w"].shape[1]),)
        else:
            shape = ()
        labels = [str(x) for x in _array(z, "labels", path).reshape(-1)] if "labels" in z else []
        name = str(_array(z, "name", path)) if "name" in z else Path(path).stem
    return canonicalize(name, shape, ops, labels)


def save(path, ops, labels=(), name="model", input_shape=None) -> None:
    """Write an .npz model: `ops` is a list of (kind, tensors dict) in execution order; `input_shape` (H, W, C) for
    a model that starts with a conv."""
    arrays = {"kinds": np.array([k for k, _ in ops]), "name": np.array(name)}
    if input_shape is not None:
        arrays["input_shape"] = np.array(input_shape, dtype=np.int64)
    if len(labels):
        arrays["labels"] = np.array([str(x) for x in labels])
    for i, (_, tensors) in enumerate(ops):
        arrays.update({f"{i}.{k}": np.asarray(v) for k, v in tensors.items()})
    np.savez(path, **arrays)


def from_sklearn_mlp(clf) -> list:
    """ops list of a fitted scikit-learn MLPClassifier (3+ classes: softmax output) or MLPRegressor, ReLU hidden
    layers. Save its classes as labels: `save(path, from_sklearn_mlp(clf), labels=clf.classes_)`."""
    if clf.activation != "relu":
        raise UnsupportedOpError(f"{type(clf).__name__} activation '{clf.activation}' is not supported (use 'relu')")
    if clf.out_activation_ not in ("softmax", "identity"):
        raise UnsupportedOpError(f"{type(clf).__name__} output activation '{clf.out_activation_}' (a binary "
                                 f"classifier's single logistic unit) is not supported; train with 3+ classes")
    ops = []
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        ops.append(("dense", {"w": w.T.astype(np.float32), "b": b.astype(np.float32)}))
        if i < len(clf.coefs_) - 1:
            ops.append(("relu", {}))
    if clf.out_activation_ == "softmax":
        ops.append(("softmax", {}))
    return ops
