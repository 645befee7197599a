"""Dense layers with 16-bit weights (precision scaling): int16 weights in an int8 model, float16 storage in a float one.

Kind "dense16", by the model's arithmetic:
- dtype "i8": weights int16 (signed, symmetric per row), activations int8 as in every int8 layer. Blob tensors `w` i16
  (out, in), `b` i32 and `q` u32 (out,) as in dense layers. For the layers where int8 rounding costs accuracy (often
  the first and the last): 2 bytes per weight, about 256x finer steps. Where the int8 kernel bounds its accumulator by
  the input count, this one bounds it by the row's L1 norm: |sum w*x| <= 128 * sum|w_q|, so the row scale is raised
  just enough for the worst case of any int8 input (and the folded bias) to stay inside int32.
- dtype "f32": weights stored as float16 (`w` f16, `b` f32), computed in the device's float. Half the bytes of a
  float32 blob; the f16 optimizer has already rounded the weights, so writing them loses nothing more.
The device kernels are device/udx/dense16.py.
"""
from __future__ import annotations

import numpy as np

from microdx.blob_format import align
from microdx.errors import QuantizationError
from microdx.fixedpoint import INT32_MAX, M_LIMIT, check_int32, quantize_multiplier
from microdx.ir import Layer
from microdx.ops import dense

W_MAX = 32767


def quantize(layer: Layer, in_q: tuple[float, int], out_q: tuple[float, int],
             input_power: np.ndarray | None = None) -> tuple[Layer, tuple[float, int], list[str]]:
    """int16-weight version of a float dense layer (int8 activations): see the module docstring.

    Row scale s_w = max(max|w|/32767, (256 sum|w| + |b|/s_in) / (2^31 - 1)): the second term keeps
    |sum w_q x| + |b_q - z_in sum w_q| inside int32 for every int8 input. Returns (layer, output (scale, zero), notes).
    """
    s_in, z_in = in_q
    s_out, z_out = out_q
    w = layer.tensors["w"].astype(np.float64)
    b = layer.tensors["b"].astype(np.float64)
    m_rows = len(w)
    notes = []
    room = INT32_MAX - 1
    s_w = np.maximum(np.abs(w).max(axis=1) / W_MAX, (256 * np.abs(w).sum(axis=1) + np.abs(b) / s_in) / room)
    top = float(s_w.max()) or 1.0
    s_w = np.maximum(s_w, top / dense.ROW_SCALE_FLOOR)      # dead rows: as in int8 (ops/dense.py)
    M = s_in * s_w / s_out
    if M.max() >= M_LIMIT:
        lo = (-128 - z_out) * s_out
        s_out = float(s_in * s_w.max() / M_LIMIT * (1 + 1e-6))
        z_out = int(np.clip(round(-128 - lo / s_out), -128, 127))
        M = s_in * s_w / s_out
        notes.append(f"{layer.name}: output scale widened to {s_out:.4g} to keep multipliers below 1/8")
    w_q = np.clip(np.round(w / s_w[:, None]), -W_MAX, W_MAX).astype(np.int64)
    b_fold = np.round(b / (s_in * s_w)).astype(np.int64) - z_in * w_q.sum(axis=1)
    worst = np.abs(b_fold) + 128 * np.abs(w_q).sum(axis=1)
    if worst.max() > INT32_MAX:   # cannot happen with the scale above; the contract's last guard
        raise QuantizationError(f"layer '{layer.name}': int16 weights can overflow the int32 accumulator "
                                f"(worst case {worst.max()})")
    mult = [quantize_multiplier(float(v)) for v in M]
    q = np.array([mm | (ss << 16) for mm, ss in mult], dtype=np.uint32)
    tensors = {"w": w_q.astype("<i2"), "b": b_fold.astype(np.int32), "q": q}
    attrs = {"act": layer.attrs.get("act"), "zero": int(z_out), "scale": float(s_out)}
    return Layer("dense16", layer.name, "i8", tensors, attrs), (float(s_out), int(z_out)), notes


def as_float16(layer: Layer) -> Layer:
    """A float dense layer as stored in a float blob with float16 weights (dtype f32: computed in float)."""
    return Layer("dense16", layer.name, "f32", {"w": layer.tensors["w"].astype("<f2"),
                                                "b": layer.tensors["b"].astype(np.float32)},
                 {"act": layer.attrs.get("act")})


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's int16-weight kernel over a batch (device/udx/dense16.py Dense16I8): acc = sum(w*x), then
    the dense layer's requantization. x: (N, n) int8 -> (N, m) int8; int32 bounds asserted."""
    x = np.asarray(x, dtype=np.int64)
    w = layer.tensors["w"].astype(np.int64)
    check_int32("sum |w * x| (bounds every partial sum)", np.abs(x) @ np.abs(w).T)
    return dense.finish_i8(layer, x @ w.T, np.zeros((len(x), 1), np.int64))


def forward_float(layer: Layer, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Float forward with the weights as stored (float16 values)."""
    return dense.forward_float(layer, x, dtype)


def forward_f32(layer: Layer, x: np.ndarray) -> np.ndarray:
    """Float32 reference of the device's float16-weight kernel."""
    return dense.forward_float(layer, x, np.float32).astype(np.float32)


def macs(layer: Layer) -> int:
    return int(np.prod(layer.tensors["w"].shape))


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(one output row, whole layer) of scratch in bytes, as device/udx/dense16.py plans it: int16 rows then
    biases and multipliers; float16 rows, padded to 4 bytes, then float32 biases."""
    m, n = layer.tensors["w"].shape
    if layer.dtype == "i8":
        return align(2 * n) + 8, align(2 * n * m) + 8 * m
    return align(2 * n) + 4, align(2 * n * m) + 4 * m


def tensor_spec(dtype: str, n: int, m: int, entry: dict | None = None) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Blob tensors of a dense16 layer with n inputs and m outputs: name -> (blob dtype, shape)."""
    if dtype == "i8":
        return {"w": ("i16", (m, n)), "b": ("i32", (m,)), "q": ("u32", (m,))}
    return {"w": ("f16", (m, n)), "b": ("f32", (m,))}
