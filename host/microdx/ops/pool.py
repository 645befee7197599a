"""2-D average and max pooling on HWC activations (kinds "avgpool2d", "maxpool2d"), as TFLite defines them: a window
of `kernel` cells moved by `stride`, `pad` cells around the input that take no part (the average divides by the
window's cells that lie on the input, like PyTorch's count_include_pad=False), quantization passed through (int8
codes pooled directly: the output keeps the input's scale and zero point). int8 average: the sum of the valid codes
divided by their count, rounded half away from zero (sum >= 0: (sum + n//2) // n, else -((-sum + n//2) // n));
ReLU, if fused, clamps at the zero point. No weights. Device kernels: device/udx/pool.py.
"""
from __future__ import annotations

import numpy as np

from microdx.ir import Layer
from microdx.ops import conv2d

SPATIAL = True


def output_shape(layer: Layer, in_shape) -> tuple[int, int, int]:
    a = layer.attrs
    return conv2d.out_shape(in_shape, a["kernel"], a["stride"], a["pad"], in_shape[2])


def _windows(layer: Layer, x: np.ndarray, fill) -> tuple[np.ndarray, np.ndarray]:
    """(N, Ho, Wo, kh*kw, C) windows with `fill` in padded cells, and the (Ho, Wo, kh*kw) mask of real cells."""
    cols = conv2d.windows(layer, x, fill)
    cols = cols.reshape(*cols.shape[:3], -1, x.shape[3])
    ones = np.ones((1, *x.shape[1:3], 1))
    mask = conv2d.windows(layer, ones, 0)[0] > 0            # Ho, Wo, kh*kw
    return cols, mask


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    x = x.astype(dtype)
    if layer.kind == "maxpool2d":
        y = _windows(layer, x, -np.inf)[0].max(axis=3)
    else:
        cols, mask = _windows(layer, x, 0)
        y = cols.sum(axis=3) / mask.sum(axis=2)[None, :, :, None]
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    return forward_float(layer, x, np.float32).astype(np.float32)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    """Pooling works on the int8 codes: the output keeps in_q (out_q, calibrated, is not used)."""
    attrs = {**layer.attrs, "zero": int(in_q[1]), "scale": float(in_q[0])}
    return Layer(layer.kind, layer.name, "i8", {}, attrs), in_q, []


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's int8 pooling over a batch (device/udx/pool.py)."""
    x = np.asarray(x, dtype=np.int64)
    lo = layer.attrs["zero"] if layer.attrs.get("act") == "relu" else -128
    if layer.kind == "maxpool2d":
        y = _windows(layer, x, -(1 << 20))[0].max(axis=3)
    else:
        cols, mask = _windows(layer, x, 0)
        s = cols.sum(axis=3)
        n = mask.sum(axis=2)[None, :, :, None]
        y = np.where(s >= 0, (s + n // 2) // n, -((-s + n // 2) // n))
    return np.clip(y, lo, 127).astype(np.int8)


def macs(layer: Layer) -> int:
    ho, wo, c = output_shape(layer, layer.attrs["in_shape"])
    return int(ho * wo * c * layer.attrs["kernel"][0] * layer.attrs["kernel"][1])


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    return 0, 0


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    return {}
