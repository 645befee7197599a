"""The .npz model schema (docs/npz-schema.md): a layer list plus weights, no pickles.

    kinds     string array, one entry per op in execution order: dense | relu | softmax | flatten
    {i}.w     float array (out, in) for op i = dense   (note: (out, in), as ONNX Gemm with transB=1)
    {i}.b     float array (out,)    for op i = dense   (optional, zeros if absent)
    input_shape  int array (optional; default: the first dense layer's `in`)
    labels    string array (optional), name  string scalar (optional)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.ir import Graph, canonicalize


def load(path) -> Graph:
    """Float Graph from an .npz model file."""
    with np.load(path, allow_pickle=False) as z:
        if "kinds" not in z:
            raise UnsupportedOpError(f"{path}: no 'kinds' array; see docs/npz-schema.md")
        ops = []
        for i, kind in enumerate(str(k) for k in z["kinds"]):
            tensors = {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith(f"{i}.")}
            if kind == "dense" and "w" not in tensors:
                raise UnsupportedOpError(f"{path}: op {i} is dense but '{i}.w' is missing")
            ops.append((kind, f"{kind}{i}", tensors))
        first = next((t for k, _, t in ops if k == "dense"), None)
        if "input_shape" in z:
            shape = tuple(int(d) for d in z["input_shape"])
        elif first is not None:
            shape = (int(first["w"].shape[1]),)
        else:
            shape = ()
        labels = [str(x) for x in z["labels"]] if "labels" in z else []
        name = str(z["name"]) if "name" in z else Path(path).stem
    return canonicalize(name, shape, ops, labels)


def save(path, ops, labels=(), name="model") -> None:
    """Write an .npz model: `ops` is a list of (kind, tensors dict) in execution order."""
    arrays = {"kinds": np.array([k for k, _ in ops]), "name": np.array(name)}
    if labels:
        arrays["labels"] = np.array([str(x) for x in labels])
    for i, (_, tensors) in enumerate(ops):
        arrays.update({f"{i}.{k}": np.asarray(v) for k, v in tensors.items()})
    np.savez(path, **arrays)


def from_sklearn_mlp(clf) -> list:
    """ops list of a fitted sklearn MLPClassifier (ReLU hidden layers, softmax output)."""
    if clf.activation != "relu":
        raise UnsupportedOpError(f"MLPClassifier activation '{clf.activation}' is not supported (use 'relu')")
    ops = []
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        ops.append(("dense", {"w": w.T.astype(np.float32), "b": b.astype(np.float32)}))
        ops.append(("relu", {}) if i < len(clf.coefs_) - 1 else ("softmax", {}))
    return ops
