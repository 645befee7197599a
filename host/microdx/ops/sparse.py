"""CSR-sparse int8 layer: a dense layer whose zero weights are not stored (after pruning), and its reference kernel.

Blob tensors (device/udx/sparse.py reads them): `v` u8 (nnz,) the nonzero weights offset-binary (int8 + 128, as in
dense layers); `idx` (nnz,) their input indices, u8 when the layer has at most 256 inputs, else u16; `ptr` i32 (m+1,)
row starts into v/idx; `b` i32 and `q` u32 (m,) as in dense layers. So a nonzero costs 2 bytes (3 with u16 indices)
against 1 per weight dense: a layer is stored sparse only when that is smaller (`maybe_sparse`). Header entry keys
`nnz` and `row_nnz` (the most nonzeros in one row) let the device plan its tiles before reading the record.
"""
from __future__ import annotations

import numpy as np

from microdx.fixedpoint import check_int32
from microdx.ir import Layer
from microdx.ops import dense

W_OFFSET = dense.W_OFFSET


def index_bytes(n: int) -> int:
    """Bytes of one column index for a layer with n inputs (u8 up to 256 inputs, else u16)."""
    return 1 if n <= 256 else 2


def payload_bytes(m: int, n: int, nnz: int) -> int:
    """Bytes of a sparse layer's tensors: values, indices, row pointers, bias and multipliers."""
    return nnz * (1 + index_bytes(n)) + 4 * (m + 1) + 8 * m


def maybe_sparse(layer: Layer) -> Layer:
    """The int8 dense `layer` as CSR when that stores fewer bytes (its zero weights are many), else itself."""
    if layer.kind != "dense" or layer.dtype != "i8":
        return layer
    w_u = layer.tensors["w"]
    m, n = w_u.shape
    nz = w_u != W_OFFSET
    nnz = int(nz.sum())
    if nnz == 0 or payload_bytes(m, n, nnz) >= m * n + 8 * m:
        return layer
    rows, cols = np.nonzero(nz)
    ptr = np.zeros(m + 1, np.int32)
    np.cumsum(nz.sum(axis=1), out=ptr[1:])
    tensors = {"v": w_u[rows, cols].astype(np.uint8), "idx": cols.astype(np.uint8 if index_bytes(n) == 1 else "<u2"),
               "ptr": ptr, "b": layer.tensors["b"], "q": layer.tensors["q"]}
    attrs = {**layer.attrs, "nnz": nnz, "row_nnz": int(nz.sum(axis=1).max()), "inputs": n}
    return Layer("sparse", layer.name, "i8", tensors, attrs)


def _dense_parts(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """(offset-binary values, 0/1 mask) as dense (m, n) int64 matrices, zero where nothing is stored."""
    t = layer.tensors
    m, n = len(t["ptr"]) - 1, layer.attrs["inputs"]
    rows = np.repeat(np.arange(m), np.diff(t["ptr"].astype(np.int64)))
    values, mask = np.zeros((m, n), np.int64), np.zeros((m, n), np.int64)
    values[rows, t["idx"].astype(np.int64)] = t["v"]
    mask[rows, t["idx"].astype(np.int64)] = 1
    return values, mask


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's CSR int8 kernel over a batch: per row, acc = sum(v*x[idx]) and xs = sum(x[idx]) over the
    stored entries, then dense.finish_i8 (acc - 128*xs + bias, requantized). Asserts every intermediate is int32."""
    x = np.asarray(x, dtype=np.int64)
    values, mask = _dense_parts(layer)
    check_int32("sum |v * x| (bounds every partial sum)", np.abs(x) @ values.T)
    xs = (x @ mask.T) << 7
    check_int32("128 * sum(x[idx])", xs)
    return dense.finish_i8(layer, x @ values.T, xs)


def forward_float(layer: Layer, x: np.ndarray) -> np.ndarray:
    raise NotImplementedError("sparse layers exist only as int8 (quantize a pruned dense layer)")


def macs(layer: Layer) -> int:
    """Multiply-accumulates per inference: one per stored weight."""
    return int(layer.attrs["nnz"])


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(smallest tile, whole layer) of scratch in bytes, as device/udx/sparse.py plans them: a tile of r rows
    takes at most 4 (r + 1) row pointers + r * row_nnz (values + indices) + 8 r (bias, multipliers), and one pad byte
    that starts u16 indices at an even offset."""
    n, nnz, row_nnz = layer.attrs["inputs"], layer.attrs["nnz"], layer.attrs["row_nnz"]
    m = len(layer.tensors["b"])
    row = row_nnz * (1 + index_bytes(n)) + 17
    return row, max(row, payload_bytes(m, n, nnz) + 1)


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Blob tensors of a sparse layer with n inputs, m outputs and entry['nnz'] stored weights."""
    nnz = entry["nnz"]
    return {"v": ("u8", (nnz,)), "idx": ("u8" if index_bytes(n) == 1 else "u16", (nnz,)), "ptr": ("i32", (m + 1,)),
            "b": ("i32", (m,)), "q": ("u32", (m,))}
