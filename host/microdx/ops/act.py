"""Elementwise activations that do not fuse into a layer's clamp (kind "act", attr func): relu6, tanh, sigmoid. Any
shape in, the same shape out. int8: a 256-entry lookup table indexed by the input code + 128 (tensor "t", u8 codes
stored offset-binary, code + 128), computed here from the float function and the input and output quantization, so
the device's integers are the table's by construction; the TFLite importer can fill the same table from TFLite's own
integer function, exactly. Output quantization: tanh (1/128, 0) and sigmoid (1/256, -128), as TFLite fixes them;
relu6 the calibrated range of [0, 6]. float32: the function itself. Device kernel: device/udx/act.py.
"""
from __future__ import annotations

import numpy as np

from microdx.ir import Layer

FUNCS = ("relu6", "tanh", "sigmoid")
FIXED_Q = {"tanh": (1 / 128, 0), "sigmoid": (1 / 256, -128)}   # TFLite's output quantization of these ops


def output_shape(layer: Layer, in_shape) -> tuple[int, ...]:
    return tuple(in_shape)


def apply(func: str, x: np.ndarray) -> np.ndarray:
    """The float function (any float dtype)."""
    if func == "relu6":
        return np.clip(x, 0, 6)
    if func == "tanh":
        return np.tanh(x)
    return 1 / (1 + np.exp(-np.clip(x, -80, 80)))


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    return apply(layer.attrs["func"], x.astype(dtype))


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    return forward_float(layer, x, np.float32).astype(np.float32)


def table(func: str, in_q, out_q) -> np.ndarray:
    """int8 output code of every int8 input code -128..127 (round half to even), as 256 int64."""
    codes = np.arange(-128, 128)
    y = apply(func, in_q[0] * (codes - in_q[1]))
    return np.clip(np.round(y / out_q[0]) + out_q[1], -128, 127).astype(np.int64)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    func = layer.attrs["func"]
    out_q = FIXED_Q.get(func, out_q)   # relu6: the range calibrated on its output, within [0, 6]
    t = (table(func, in_q, out_q) + 128).astype(np.uint8)
    attrs = {**layer.attrs, "zero": int(out_q[1]), "scale": float(out_q[0])}
    return Layer("act", layer.name, "i8", {"t": t}, attrs), out_q, []


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's table lookup (device/udx/act.py)."""
    return (layer.tensors["t"].astype(np.int64)[np.asarray(x, dtype=np.int64) + 128] - 128).astype(np.int8)


def macs(layer: Layer) -> int:
    return 0


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """The table is read into scratch before the lookups: 256 bytes (int8); float32 needs none."""
    return (256, 256) if layer.dtype == "i8" else (0, 0)


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    return {"t": ("u8", (256,))} if dtype == "i8" else {}
