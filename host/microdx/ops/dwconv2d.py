"""Depthwise 2-D convolution (depth multiplier 1) on HWC activations: float forward, int8 quantization, and the int8
reference kernel. Output channel c convolves input channel c only, as TFLite's DEPTHWISE_CONV_2D with multiplier 1.

Weights (C, kh, kw): a channel's kh*kw weights are contiguous, so a tile of channels is one read. Attributes as
conv2d (`in_shape`, `kernel`, `stride`, `pad`; int8: `in_zero`, the value of padded cells). int8: per-channel
symmetric weights stored offset-binary (w + 128), acc = sum(w_u * x) - 128 * sum(x) over the channel's window, plus
the folded bias, requantized per channel, exactly the dense arithmetic per (pixel, channel). Blob tensors: `w` u8
(C, kh, kw), `b` i32, `q` u32 (C,); float: `w` f32 (C, kh, kw), `b` f32. Device kernel: device/udx/dwconv2d.py.
"""
from __future__ import annotations

import numpy as np

from microdx.fixedpoint import check_int32
from microdx.ir import Layer
from microdx.ops import conv2d, dense

SPATIAL = True


def output_shape(layer: Layer, in_shape) -> tuple[int, int, int]:
    a = layer.attrs
    return conv2d.out_shape(in_shape, a["kernel"], a["stride"], a["pad"], in_shape[2])


def _windows(layer: Layer, x: np.ndarray, pad_value=0) -> np.ndarray:
    """(N, Ho, Wo, kh*kw, C): each pixel's window, per channel."""
    cols = conv2d.windows(layer, x, pad_value)
    return cols.reshape(*cols.shape[:3], -1, x.shape[3])


def _matrix(layer: Layer) -> np.ndarray:
    w = layer.tensors["w"]
    return w.reshape(w.shape[0], -1)          # (C, kh*kw)


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """y[..., c] = sum over the window of x[..., c] * w[c] + b[c] (then ReLU). x: (N, H, W, C)."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.einsum("npqkc,ck->npqc", _windows(layer, x.astype(dtype)), _matrix(layer).astype(dtype)) \
            + layer.tensors["b"].astype(dtype)
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    return forward_float(layer, x, np.float32).astype(np.float32)


def quantize(layer: Layer, in_q, out_q, input_power=None):
    """int8 depthwise conv: each channel's kh*kw weights quantized as a dense row (ops/dense.py quantize), the
    calibration power of its input channel weighing each weight's rounding error."""
    w = _matrix(layer)
    power = None
    if input_power is not None:
        per_channel = np.asarray(input_power).reshape(-1, w.shape[0]).mean(axis=0)
        power = np.full(w.shape[1], float(per_channel.mean()))
    flat = Layer("dense", layer.name, "f32", {"w": w, "b": layer.tensors["b"]}, layer.attrs)
    q, used, notes = dense.quantize(flat, in_q, out_q, power)
    attrs = {**layer.attrs, **q.attrs, "in_zero": int(in_q[1])}
    tensors = {**q.tensors, "w": q.tensors["w"].reshape(layer.tensors["w"].shape)}
    return Layer("dwconv2d", layer.name, "i8", tensors, attrs), used, notes


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's int8 depthwise kernel over a batch; asserts every intermediate is int32."""
    cols = _windows(layer, np.asarray(x, dtype=np.int64), layer.attrs["in_zero"])   # N, Ho, Wo, K, C
    n, ho, wo, k, c = cols.shape
    cols = cols.reshape(-1, k, c)
    w_u = _matrix(layer).astype(np.int64)                                               # C, K
    check_int32("sum |w_u * x| over a window", np.einsum("pkc,ck->pc", np.abs(cols), w_u))
    s1 = np.einsum("pkc,ck->pc", cols, w_u)
    xs = cols.sum(axis=1) << 7
    check_int32("128 * sum(window)", xs)
    return dense.finish_i8(layer, s1, xs).reshape(n, ho, wo, c)


def macs(layer: Layer) -> int:
    ho, wo, c = output_shape(layer, layer.attrs["in_shape"])
    return int(ho * wo * c * layer.attrs["kernel"][0] * layer.attrs["kernel"][1])


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(one channel, whole layer) of scratch in bytes, as device/udx/dwconv2d.py plans it."""
    c, k = _matrix(layer).shape
    if layer.dtype == "i8":
        return dense.tile_bytes(k, 1, dense.tail_bytes(layer)), dense.tile_bytes(k, c, dense.tail_bytes(layer))
    return 4 * (k + 1), 4 * (k + 1) * c


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict:
    shape = (m, *entry["kernel"])
    if dtype == "i8":
        return {"w": ("u8", shape), "b": ("i32", (m,)), "q": dense.q_spec(m, entry)}
    return {"w": ("f32", shape), "b": ("f32", (m,))}
