"""Global average pooling: (H, W, C) -> (C,), the mean of each channel. int8 as TFLite's MEAN/AVERAGE_POOL_2D over the
whole map with the same input and output quantization: the sum of a channel's codes divided by H*W, rounded half away
from zero (sum >= 0: (sum + n//2) // n, else -((-sum + n//2) // n)); scale and zero point pass through unchanged.
No weights. Device kernel: device/udx/gap.py.

The MEAN of an imported int8 .tflite (attrs mean = (scale, bias), float32 values) is TFLite's instead, which computes
in float32 (reference_ops::QuantizedMeanOrSum: Keras' GlobalAveragePooling2D, keep_dims false, its own output
scale): m = float(sum) / float(H*W), then round(m * scale + bias) half away from zero, plus the output zero point,
clamped; scale = s_in / s_out and bias = -z_in * scale in float32. Every operation is one float32 rounding, so a
32-bit MCU computes it natively and the 64-bit unix port through float32 stores (measured identical to TFLite's
reference kernels on 1,216 outputs).
"""
from __future__ import annotations

import numpy as np

from microdx.fixedpoint import check_int32
from microdx.ir import Layer

SPATIAL = True


def output_shape(layer: Layer, in_shape) -> tuple[int]:
    return (int(in_shape[2]),)


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    return x.astype(dtype).mean(axis=(1, 2))


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    return forward_float(layer, x, np.float32).astype(np.float32)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    """The mean of int8 codes is in the input's scale: the output keeps in_q (out_q, calibrated, is not used)."""
    attrs = {**layer.attrs, "zero": int(in_q[1]), "scale": float(in_q[0])}
    return Layer("gap", layer.name, "i8", {}, attrs), in_q, []


def mean_params(in_q, out_q) -> tuple[float, float]:
    """TFLite's float32 (scale, bias) of an int8 MEAN from input (scale, zero) in_q to output out_q."""
    scale = np.float32(in_q[0]) / np.float32(out_q[0])
    return float(scale), float(np.float32(-in_q[1]) * scale)


def tflite_mean(s: np.ndarray, n: int, params, zero: int) -> np.ndarray:
    """TFLite's int8 mean of channel sums `s` over n cells (QuantizedMeanOrSum), in float32 as it computes."""
    scale, bias = (np.float32(v) for v in params)
    v = (s.astype(np.float32) / np.float32(n)) * scale + bias    # three float32 roundings, no fused multiply-add
    r = np.trunc(v)
    frac = v - r                                                 # exact: std::round is half away from zero
    r = r + (frac >= 0.5) - (frac <= -0.5)
    return np.clip(r + zero, -128, 127).astype(np.int8)


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[1] * x.shape[2]
    s = x.sum(axis=(1, 2))
    check_int32("channel sum", s)
    if "mean" in layer.attrs:
        return tflite_mean(s, n, layer.attrs["mean"], layer.attrs["zero"])
    half = n // 2
    return np.where(s >= 0, (s + half) // n, -((-s + half) // n)).astype(np.int8)


def macs(layer: Layer) -> int:
    h, w, c = layer.attrs["in_shape"]
    return int(h * w * c)


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    return 0, 0


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    return {}
