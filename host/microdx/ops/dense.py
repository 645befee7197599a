"""Dense (fully connected) layer: float forward, int8 quantization, and the int8 reference kernel."""
from __future__ import annotations

import numpy as np

from microdx.blob_format import align
from microdx.errors import QuantizationError
from microdx.fixedpoint import INT32_MAX, M_LIMIT, check_int32, quantize_multiplier, requantize, tflite_requantize
from microdx.ir import Layer

W_OFFSET = 128  # weights are stored offset-binary: uint8 = int8 + 128 (device reads them unsigned)


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """y = x W^T + b (then ReLU). x: (N, n) -> (N, m)."""
    with np.errstate(over="ignore", invalid="ignore"):   # overflow shows as Inf: the callers check and say where
        y = x.astype(dtype) @ layer.tensors["w"].astype(dtype).T + layer.tensors["b"].astype(dtype)
    return np.maximum(y, 0) if layer.attrs.get("act") == "relu" else y


def macs(layer: Layer) -> int:
    """Multiply-accumulates per inference."""
    return int(np.prod(layer.tensors["w"].shape))


# A row's weight scale is floored at the layer's largest over ROW_SCALE_FLOOR: L2-regularised training leaves
# dead units whose weights are ~1e-10, and a scale that small would blow their folded bias past int32. Rows under
# the floor keep absolute weight errors 1/ROW_SCALE_FLOOR of the largest row's, too small to matter at the output.
ROW_SCALE_FLOOR = 1024
ACC_PER_INPUT = 255 * 128 + 128 * 128 + 128 * 127   # worst |w_u*x| + |128*x| + |z_in*w_q| per input (see below)


# Candidate row scales, as fractions of max|w|/127 (1 = no clipping): see _row_scales.
CLIP_FRACTIONS = np.geomspace(1.0, 1 / 32, 41)


def _row_scales(w: np.ndarray, input_power: np.ndarray | None) -> np.ndarray:
    """Per-row int8 scale minimising the expected output error sum_j E[x_j^2] (w_ij - q(w_ij))^2.

    One large weight (say on an input folded from a StandardScaler with a tiny std) would otherwise set a row's
    scale and round every other weight of the row coarsely; clipping it costs error only when its input is large,
    which the calibration inputs' mean squares (`input_power`, per input) measure. Without them: max|w|/127.
    """
    raw = np.abs(w).max(axis=1) / 127.0
    if input_power is None or not np.any(input_power > 0):
        return raw
    best, best_err = raw.copy(), np.full(len(w), np.inf)
    for f in CLIP_FRACTIONS:
        s = np.where(raw > 0, raw * f, 1.0)
        err = ((w - s[:, None] * np.clip(np.round(w / s[:, None]), -127, 127)) ** 2) @ input_power
        better = err < best_err
        best[better], best_err[better] = s[better], err[better]
    return best


def quantize(layer: Layer, in_q: tuple[float, int], out_q: tuple[float, int],
             input_power: np.ndarray | None = None) -> tuple[Layer, tuple[float, int], list[str]]:
    """int8 version of a float dense layer.

    Weights: symmetric int8 per output row, the row scale chosen to minimise the expected output error on the
    calibration inputs (`input_power`: the mean square of each input, see _row_scales), then floored
    (ROW_SCALE_FLOOR, and high enough for the folded bias to fit int32). Bias: int32 at scale s_in*s_w, with the input zero point folded in
    (b' = b_q - z_in * sum(w_q)). Output: per-row fixed-point multiplier M = s_in*s_w/s_out.
    Returns (layer, the output (scale, zero) actually used, notes). The output scale is widened if a
    multiplier would reach 1/8 (the fixed-point limit), which the notes report.
    """
    s_in, z_in = in_q
    s_out, z_out = out_q
    w = layer.tensors["w"].astype(np.float64)
    b = layer.tensors["b"].astype(np.float64)
    m_rows, n = w.shape
    notes = []
    # worst case over ANY int8 input: sum|w_u*x| <= 255*128*n, 128*sum|x| <= 128*128*n, |z_in*sum(w_q)| <= 128*127*n
    room = INT32_MAX - ACC_PER_INPUT * n - 1
    if room <= 0:
        raise QuantizationError(
            f"layer '{layer.name}' has {n:,} inputs: the int32 accumulator holds at most {INT32_MAX // ACC_PER_INPUT:,} "
            f"in the worst case; keep this layer in float (--float) or use fewer inputs")
    top = np.abs(w).max() / 127.0 or 1.0
    if layer.attrs.get("codebook_bits"):   # shared weights: one scale for the layer keeps equal weights equal in int8
        raw = np.full(m_rows, top)
        s_w = np.full(m_rows, max(top, float((np.abs(b) / (s_in * room)).max())))
    else:
        raw = _row_scales(w, input_power)
        s_w = np.maximum.reduce([raw, np.full(m_rows, top / ROW_SCALE_FLOOR), np.abs(b) / (s_in * room)])
    floored = int(np.sum(s_w > raw))
    if floored:
        notes.append(f"{layer.name}: {floored} of {m_rows} rows have weights near zero (max |w| under "
                     f"{127 * top / ROW_SCALE_FLOOR:.3g}, dead units?): their scale is floored so their bias stays "
                     f"inside int32")
    w_q = np.clip(np.round(w / s_w[:, None]), -127, 127).astype(np.int64)
    M = s_in * s_w / s_out
    if M.max() >= M_LIMIT:
        lo = (-128 - z_out) * s_out
        s_out = float(s_in * s_w.max() / M_LIMIT * (1 + 1e-6))
        z_out = int(np.clip(round(-128 - lo / s_out), -128, 127))
        M = s_in * s_w / s_out
        notes.append(f"{layer.name}: output scale widened to {s_out:.4g} to keep multipliers below 1/8")
    b_q = np.round(b / (s_in * s_w)).astype(np.int64)
    b_fold = b_q - z_in * w_q.sum(axis=1)
    worst = np.abs(b_fold) + (255 * 128 + 128 * 128) * n
    if worst.max() > INT32_MAX:   # cannot happen after the floor above; kept as the contract's last guard
        raise QuantizationError(f"layer '{layer.name}': bias up to {np.abs(b_fold).max()} can overflow the int32 "
                                f"accumulator (worst case {worst.max()})")
    mult = [quantize_multiplier(float(v)) for v in M]
    q = np.array([mm | (ss << 16) for mm, ss in mult], dtype=np.uint32)
    tensors = {
        "w": (w_q + W_OFFSET).astype(np.uint8),
        "b": b_fold.astype(np.int32),
        "q": q,
    }
    attrs = {"act": layer.attrs.get("act"), "zero": int(z_out), "scale": float(s_out)}
    if layer.attrs.get("codebook_bits"):
        attrs["codebook_bits"] = layer.attrs["codebook_bits"]
    return Layer("dense", layer.name, "i8", tensors, attrs), (float(s_out), int(z_out)), notes


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's int8 dense kernel, vectorised over a batch. x: (N, n) int8 -> (N, m) int8.

    Mirrors device/udx/dense.py DenseI8.forward step by step and asserts every intermediate is int32.
    """
    x = np.asarray(x, dtype=np.int64)
    w_u = layer.tensors["w"].astype(np.int64)           # offset-binary, 1..255
    check_int32("sum |w_u * x| (bounds every partial sum)", np.abs(x) @ w_u.T)
    xs = x.sum(axis=1, keepdims=True) << 7
    check_int32("128 * sum(x)", xs)
    return finish_i8(layer, x @ w_u.T, xs)


def finish_i8(layer: Layer, s1: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """What device/udx/dense.py requant_row does with a row's sum(w_u*x) `s1` and 128*sum(x) `xs`:
    (s1 - xs) + bias, requantized, plus the output zero point, clamped to [lo, hi] (ReLU: lo is the zero point; hi is
    127 unless attrs give it). Requantization: microdx's (q = m | s << 16), or with attrs rq (layers of int8 .tflite
    models) TFLite's, q = (Q31 multiplier, shift) pairs, single (rq 1) or double (rq 2) rounding."""
    bias = layer.tensors["b"].astype(np.int64)
    q = layer.tensors["q"].astype(np.int64)
    t = s1 - xs
    check_int32("sum(w_u*x) - 128*sum(x)", t)
    acc = t + bias[None, :]
    if layer.attrs.get("rq"):
        check_int32("accumulator", acc)
        shift = q[:, 1] - ((q[:, 1] & 0x80000000) << 1)     # the shift is stored as int32 in a u32
        v = tflite_requantize(acc, q[None, :, 0], shift[None, :], single=layer.attrs["rq"] == 1)
    else:
        v = requantize(acc, (q & 0xFFFF)[None, :], ((q >> 16) & 0xFF)[None, :])
    lo = layer.attrs["zero"] if layer.attrs.get("act") == "relu" else -128
    return np.clip(v + layer.attrs["zero"], lo, layer.attrs.get("hi", 127)).astype(np.int8)


def tail_bytes(layer_or_attrs) -> int:
    """Bytes per output row in the device's int8 tiles beyond the weights: bias and multiplier (8), or with TFLite's
    requantization (attrs rq) bias, multiplier, shift and the row's int32 accumulator (16: the native kernels
    requantize a tile's accumulators in one call)."""
    attrs = getattr(layer_or_attrs, "attrs", layer_or_attrs)
    return 16 if attrs.get("rq") else 8


def q_spec(m: int, attrs) -> tuple[str, tuple[int, ...]]:
    """The blob dtype and shape of an int8 layer's q tensor: one u32 per output, or (Q31 multiplier, shift) pairs
    under TFLite's requantization (attrs rq)."""
    return ("u32", (m, 2) if (attrs or {}).get("rq") else (m,))


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Float32 reference of the device's f32 kernel (the device accumulates in its native float)."""
    return forward_float(layer, x, np.float32).astype(np.float32)


def tile_bytes(n: int, r: int, tail: int) -> int:
    """Bytes of a device int8 tile of r rows of n weight bytes, padded to 4 (the blob aligns tensors so, and the
    biases after them stay aligned), then `tail` bytes per row (udx.dense.tile_bytes)."""
    return align(r * n) + tail * r


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(one output row, whole layer) of weight scratch the device kernel needs, in bytes (device/udx/dense.py)."""
    m, n = layer.tensors["w"].shape
    if layer.dtype == "i8":
        return tile_bytes(n, 1, tail_bytes(layer)), tile_bytes(n, m, tail_bytes(layer))
    return 4 * (n + 1), 4 * (n + 1) * m


def tensor_spec(dtype: str, n: int, m: int, entry: dict | None = None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Blob tensors of a dense layer with n inputs and m outputs: name -> (blob dtype, shape)."""
    if dtype == "i8":
        return {"w": ("u8", (m, n)), "b": ("i32", (m,)), "q": q_spec(m, entry)}
    return {"w": ("f32", (m, n)), "b": ("f32", (m,))}
