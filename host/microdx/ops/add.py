"""Residual addition (kind "add"): y = x + skip, elementwise, where x is the previous layer's output and skip the
output of an earlier layer (attrs skip: its name, None for the model input; the blob stores its index, -1 for the
input), which the device keeps in a skip buffer
that its RAM plan counts (docs/format.md). One skip is live at a time: a later add's skip starts at or after an
earlier add.

int8: TFLite's ADD (reference_integer_ops::Add), exactly: each input minus its zero point (za for the skip, zb for
x), shifted left by 20, rescaled by its Q31 multiplier (to twice the larger input scale), summed, rescaled to the
output, plus the output zero point, clamped to [lo, hi] (lo: the zero point under ReLU). Every requantization is
TFLite's double rounding (microdx.fixedpoint.tflite_requantize). Tensor q (u32, (3, 2)): the (multiplier, shift)
of the skip, of x and of the output. float: x + skip, then ReLU. Device kernel: device/udx/add.py.
"""
from __future__ import annotations

import numpy as np

from microdx.fixedpoint import check_int32, tflite_multiplier, tflite_requantize
from microdx.ir import Layer

LEFT_SHIFT = 20


def output_shape(layer: Layer, in_shape) -> tuple[int, ...]:
    return tuple(in_shape)


def forward_float(layer: Layer, pair, dtype=np.float64) -> np.ndarray:
    """pair: (x, skip), both (N, n)."""
    x, skip = pair
    y = x.astype(dtype) + skip.astype(dtype)
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def forward_f32(layer: Layer, pair) -> np.ndarray:
    return forward_float(layer, pair, np.float32).astype(np.float32)


def params(skip_q, x_q, out_q) -> np.ndarray:
    """TFLite's ADD multipliers for inputs of (scale, zero) skip_q and x_q and an output out_q: the q tensor."""
    twice = 2 * max(skip_q[0], x_q[0])
    rows = [tflite_multiplier(skip_q[0] / twice), tflite_multiplier(x_q[0] / twice),
            tflite_multiplier(twice / ((1 << LEFT_SHIFT) * out_q[0]))]
    return np.array([[int(m[0]), int(s[0]) & 0xFFFFFFFF] for m, s in rows], dtype=np.uint32)


def quantize(layer: Layer, in_q, out_q, input_power=None, skip_q=None):
    """int8 add of a float add layer: x has in_q, the skip skip_q, the output the calibrated out_q."""
    attrs = {"act": layer.attrs.get("act"), "skip": layer.attrs["skip"], "za": int(skip_q[1]), "zb": int(in_q[1]),
             "zero": int(out_q[1]), "scale": float(out_q[0])}
    return Layer("add", layer.name, "i8", {"q": params(skip_q, in_q, out_q)}, attrs), out_q, []


def forward_i8(layer: Layer, pair) -> np.ndarray:
    """The device's int8 add over a batch: pair (x, skip) of int8 (N, n) arrays."""
    x, skip = pair
    lo = layer.attrs["zero"] if layer.attrs.get("act") == "relu" else -128
    return tflite_add(skip, x, layer.tensors["q"], layer.attrs["za"], layer.attrs["zb"], layer.attrs["zero"], lo,
                      layer.attrs.get("hi", 127)).astype(np.int8)


def tflite_add(a, b, q, za: int, zb: int, zero: int, lo: int, hi: int) -> np.ndarray:
    """TFLite's int8 ADD of codes a (zero point za) and b (zb) with the (multiplier, shift) rows of q (params'),
    clamped to [lo, hi]: int64 codes. The importer's reading of TFLite's arithmetic (tflite_read) uses it too."""
    a, b, q = (np.asarray(v, dtype=np.int64) for v in (a, b, q))
    shift = q[:, 1] - ((q[:, 1] & 0x80000000) << 1)     # the shift is stored as int32 in a u32
    a = (a - za) << LEFT_SHIFT
    b = (b - zb) << LEFT_SHIFT
    check_int32("shifted add inputs", np.concatenate([a.reshape(-1), b.reshape(-1)]))
    s = tflite_requantize(a, q[0, 0], shift[0]) + tflite_requantize(b, q[1, 0], shift[1])
    check_int32("add sum", s)
    return np.clip(tflite_requantize(s, q[2, 0], shift[2]) + zero, lo, hi)


def macs(layer: Layer) -> int:
    return 0


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """int8: the q tensor (24 bytes) is read into scratch; float needs none."""
    return (24, 24) if layer.dtype == "i8" else (0, 0)


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    return {"q": ("u32", (3, 2))} if dtype == "i8" else {}
