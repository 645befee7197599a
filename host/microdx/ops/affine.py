"""Elementwise affine y = x * scale + shift (then ReLU): what input normalisation, BatchNormalization and
Mul/Add/Sub/Div by constants import as. It exists only between import and the clean pass, which folds it into
a neighbouring dense layer exactly (microdx.optimizers.clean); the device has no kernel for it."""
from __future__ import annotations

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.ir import Layer


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """x * scale + shift (then ReLU), per feature. x: (N, n) -> (N, n)."""
    y = x.astype(dtype) * layer.tensors["scale"].astype(dtype) + layer.tensors["shift"].astype(dtype)
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def macs(layer: Layer) -> int:
    """Multiply-accumulates per inference (one per feature)."""
    return int(layer.tensors["scale"].size)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    raise UnsupportedOpError(f"layer '{layer.name}' is an elementwise scale/shift that was not folded into a dense "
                             f"layer; run the clean pass first (microdx convert does)")
