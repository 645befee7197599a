"""Softmax on the device (kind "softmax"): a vector of logits in, probabilities out, for models whose users want
them on the board (the TFLite importer keeps a model's SOFTMAX this way; otherwise a final softmax stays a host-side
post-op, since the arg-max needs none).

int8, a documented equivalent of TFLite's int8 softmax with its fixed output quantization (1/256, -128): with
d = max(x) - x (0..255 codes), e = t[d] where t[d] = round(2**15 * exp(-scale_in * d)) (tensor "t", u16, computed
here), the output code is (256 * e + sum(e) // 2) // sum(e) - 128, clamped to 127. Every intermediate stays inside
int32 for up to 32,767 logits (sum(e) <= 2**15 * n). It is monotone in x, so the arg-max is kept (two logits may
round to the same code, as in TFLite). float32: exp(x - max) / sum. Device kernel: device/udx/act.py.

The softmax of an imported int8 .tflite (attrs tfl) is TFLite's own instead, exactly (microdx.gemmlowp): tensor "t"
is u32 (256,), TFLite's Q0.31 exp of each d = max(x) - x (device: udx/softmax_tfl.py).
"""
from __future__ import annotations

import numpy as np

from microdx import gemmlowp
from microdx.fixedpoint import check_int32
from microdx.ir import Layer

ONE = 1 << 15
OUT_Q = (1 / 256, -128)
MAX_LOGITS = 32767
MAX_TFL_LOGITS = 4095   # TFLite's: each exp adds at most 2**19 to its Q12.19 int32 sum


def output_shape(layer: Layer, in_shape) -> tuple[int, ...]:
    return tuple(in_shape)


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    x = x.astype(dtype)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    return forward_float(layer, x, np.float32).astype(np.float32)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    t = np.round(ONE * np.exp(-in_q[0] * np.arange(256))).astype(np.uint16)
    attrs = {**layer.attrs, "zero": OUT_Q[1], "scale": OUT_Q[0]}
    return Layer("softmax", layer.name, "i8", {"t": t}, attrs), OUT_Q, []


def tflite(name: str, in_scale: float, beta: float = 1.0) -> Layer:
    """The int8 softmax layer of an imported .tflite: TFLite's arithmetic, its exp table for this input scale."""
    return Layer("softmax", name, "i8", {"t": gemmlowp.exp_table(in_scale, beta)},
                 {"tfl": 1, "zero": OUT_Q[1], "scale": OUT_Q[0]})


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's integer softmax (device/udx/act.py) over a batch (N, n)."""
    if layer.attrs.get("tfl"):
        return gemmlowp.softmax_rows(layer.tensors["t"], x)
    x = np.asarray(x, dtype=np.int64)
    e = layer.tensors["t"].astype(np.int64)[x.max(axis=1, keepdims=True) - x]
    s = e.sum(axis=1, keepdims=True)
    check_int32("softmax sum", s)
    num = 256 * e + s // 2
    check_int32("softmax numerator", num)
    return np.minimum(num // s - 128, 127).astype(np.int8)


def macs(layer: Layer) -> int:
    return 0


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """The exp table is read into scratch: 512 bytes (int8; TFLite's, 1,024); float32 needs none."""
    size = 1024 if layer.attrs.get("tfl") else 512
    return (size, size) if layer.dtype == "i8" else (0, 0)


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    return {"t": ("u32" if (entry or {}).get("tfl") else "u16", (256,))} if dtype == "i8" else {}
