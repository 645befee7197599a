"""2-D convolution (groups = 1) on HWC activations: float forward, int8 quantization and the int8 reference kernel.

Layout: activations are (H, W, C), row-major, as the device's flat buffers hold them (TFLite's NHWC without N);
weights are (out, kh, kw, in) (TFLite's OHWI). Attributes: `in_shape` (H, W, C), `kernel` (kh, kw), `stride`
(sh, sw), `pad` (top, bottom, left, right), explicit so that uneven SAME padding is expressible; padded cells hold
real 0, which in int8 is the input zero point (`in_zero`, as TFLite defines it), so folding z_in into the bias stays
exact at the borders.

The int8 arithmetic is the dense kernel's on every output pixel's window (im2col): offset-binary weights w_u = w + 128,
acc = sum(w_u * x) - 128 * sum(x) over the window with padded cells = in_zero, plus the folded bias, requantized per
output channel. Blob tensors: `w` u8 (out, kh, kw, in), `b` i32, `q` u32 (out,); float: `w` f32 (out, kh, kw, in),
`b` f32. The device kernel is device/udx/conv2d.py.
"""
from __future__ import annotations

import numpy as np

from microdx.fixedpoint import check_int32
from microdx.ir import Layer
from microdx.ops import dense

SPATIAL = True   # takes (N, H, W, C) activations, not flat vectors (microdx.reference)


def out_shape(in_shape, kernel, stride, pad, out_channels) -> tuple[int, int, int] | None:
    """(H_out, W_out, out channels) for input (H, W, C), or None when the window does not fit the padded input."""
    h, w, _ = in_shape
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = kernel, stride, pad
    if h + pt + pb < kh or w + pl + pr < kw:
        return None
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1, int(out_channels)


def same_padding(size: int, kernel: int, stride: int, odd_after: bool = True) -> tuple[int, int]:
    """SAME padding (before, after) of one axis, as TFLite and ONNX (SAME_UPPER) define it: out = ceil(size / stride),
    the odd cell after (ONNX's SAME_LOWER puts it before: odd_after=False)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if odd_after else (big, small)


def output_shape(layer: Layer, in_shape) -> tuple[int, int, int]:
    """Output shape of a conv2d layer on `in_shape` (its attrs were checked when it was made)."""
    a = layer.attrs
    return out_shape(in_shape, a["kernel"], a["stride"], a["pad"], layer.tensors["w"].shape[0])


def layer_out_shape(layer: Layer) -> tuple[int, int, int]:
    """Output shape of a conv2d layer on the input it was made for."""
    return output_shape(layer, layer.attrs["in_shape"])


def windows(layer: Layer, x: np.ndarray, pad_value=0) -> np.ndarray:
    """im2col: x (N, H, W, C) -> (N, H_out, W_out, kh * kw * C), padded with `pad_value`, in the weights' order."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["pad"]
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    v = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]   # N, Ho, Wo, C, kh, kw
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(*v.shape[:3], -1)


def _matrix(layer: Layer) -> np.ndarray:
    w = layer.tensors["w"]
    return w.reshape(w.shape[0], -1)


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """y = conv(x, W) + b (then ReLU). x: (N, H, W, C) -> (N, H_out, W_out, out)."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = windows(layer, x.astype(dtype)) @ _matrix(layer).astype(dtype).T + layer.tensors["b"].astype(dtype)
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Float32 reference of the device's f32 conv kernel."""
    return forward_float(layer, x, np.float32).astype(np.float32)


def quantize(layer: Layer, in_q: tuple[float, int], out_q: tuple[float, int],
             input_power: np.ndarray | None = None) -> tuple[Layer, tuple[float, int], list[str]]:
    """int8 conv: per-output-channel weights, chosen exactly as a dense layer's rows (ops/dense.py quantize) on the
    (out, kh*kw*in) weight matrix; `input_power` (H, W, C) mean squares of the inputs, averaged over positions."""
    w = layer.tensors["w"]
    power = None
    if input_power is not None:
        per_channel = np.asarray(input_power).reshape(-1, w.shape[3]).mean(axis=0)
        power = np.tile(per_channel, w.shape[1] * w.shape[2])
    flat = Layer("dense", layer.name, "f32", {"w": _matrix(layer), "b": layer.tensors["b"]}, layer.attrs)
    q, used, notes = dense.quantize(flat, in_q, out_q, power)
    attrs = {**layer.attrs, **q.attrs, "in_zero": int(in_q[1])}
    tensors = {**q.tensors, "w": q.tensors["w"].reshape(w.shape)}
    return Layer("conv2d", layer.name, "i8", tensors, attrs), used, notes


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's int8 conv kernel over a batch: x (N, H, W, C) int8 -> (N, H_out, W_out, out) int8.

    Per output pixel: the window (padded cells = in_zero), then dense.finish_i8. Asserts every intermediate is int32.
    """
    cols = windows(layer, np.asarray(x, dtype=np.int64), layer.attrs["in_zero"])
    n, ho, wo, k = cols.shape
    cols = cols.reshape(-1, k)
    w_u = _matrix(layer).astype(np.int64)
    check_int32("sum |w_u * x| over a window (bounds every partial sum)", np.abs(cols) @ w_u.T)
    xs = cols.sum(axis=1, keepdims=True) << 7
    check_int32("128 * sum(window)", xs)
    return dense.finish_i8(layer, cols @ w_u.T, xs).reshape(n, ho, wo, -1)


def macs(layer: Layer) -> int:
    """Multiply-accumulates per inference: every output pixel's window times every output channel."""
    ho, wo, _ = layer_out_shape(layer)
    return int(ho * wo * _matrix(layer).size)


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(one output channel, whole layer) of weight scratch in bytes, as device/udx/conv2d.py plans it: a tile of
    output channels, each kh*kw*in weights (+ bias and multiplier, or + float bias)."""
    out, k = _matrix(layer).shape
    if layer.dtype == "i8":
        return dense.tile_bytes(k, 1, dense.tail_bytes(layer)), dense.tile_bytes(k, out, dense.tail_bytes(layer))
    return 4 * (k + 1), 4 * (k + 1) * out


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Blob tensors of a conv2d layer with m output channels; entry has kernel and in_shape."""
    shape = (m, *entry["kernel"], entry["in_shape"][-1])
    if dtype == "i8":
        return {"w": ("u8", shape), "b": ("i32", (m,)), "q": dense.q_spec(m, entry)}
    return {"w": ("f32", shape), "b": ("f32", (m,))}
