"""Codebook int8 layer (k-means weight sharing): 2^bits shared int8 weights and a `bits`-bit index per weight.

Blob tensors (device/udx/codebook.py reads them): `cb` u8 (2^bits,) the shared weights, offset-binary (int8 + 128, as
in dense layers); `w` u8 (out, stride) the indices of each row packed little-endian (index i of a row occupies bits
i*bits ... i*bits+bits-1 of the row's bytes), stride = ceil(in * bits / 8) + 1: the spare byte lets a reader take two
bytes at any index without leaving the row; `b` i32 and `q` u32 (out,) as in dense layers. Header key `bits`.
The arithmetic is exactly the dense kernel's with w_u[o, i] = cb[index[o, i]].
"""
from __future__ import annotations

import numpy as np

from microdx.ir import Layer
from microdx.ops import dense

W_OFFSET = dense.W_OFFSET


def stride(n: int, bits: int) -> int:
    """Bytes of one packed row of n indices of `bits` bits, with the spare byte."""
    return (n * bits + 7) // 8 + 1


def pack(index: np.ndarray, bits: int) -> np.ndarray:
    """(m, n) indices < 2^bits -> (m, stride) bytes, little-endian bit order, spare byte zero."""
    m, n = index.shape
    bitplanes = ((index[:, :, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(m, n * bits)
    packed = np.packbits(bitplanes, axis=1, bitorder="little")
    return np.hstack([packed, np.zeros((m, stride(n, bits) - packed.shape[1]), np.uint8)])


def unpack(packed: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of pack: (m, stride) bytes -> (m, n) indices."""
    bitplanes = np.unpackbits(packed, axis=1, bitorder="little")[:, :n * bits].reshape(len(packed), n, bits)
    return (bitplanes.astype(np.int64) << np.arange(bits)).sum(axis=2)


def maybe_codebook(layer: Layer) -> Layer:
    """An int8 dense layer made by k-means sharing (attrs codebook_bits) as a codebook layer, when that is smaller."""
    bits = layer.attrs.get("codebook_bits")
    if layer.kind != "dense" or layer.dtype != "i8" or not bits:
        return layer
    w_u = layer.tensors["w"]
    m, n = w_u.shape
    values = np.unique(w_u)
    if len(values) > 2 ** bits or m * stride(n, bits) + 2 ** bits >= m * n:
        return layer
    cb = np.full(2 ** bits, W_OFFSET, np.uint8)          # unused entries: weight 0
    cb[:len(values)] = values
    attrs = {k: v for k, v in layer.attrs.items() if k != "codebook_bits"}
    tensors = {"cb": cb, "w": pack(np.searchsorted(values, w_u), bits), "b": layer.tensors["b"], "q": layer.tensors["q"]}
    return Layer("codebook", layer.name, "i8", tensors, {**attrs, "bits": int(bits), "inputs": n})


def as_dense(layer: Layer) -> Layer:
    """The same layer with its weights decoded: what the device multiplies."""
    w_u = layer.tensors["cb"][unpack(layer.tensors["w"], layer.attrs["inputs"], layer.attrs["bits"])]
    return Layer("dense", layer.name, "i8", {"w": w_u, "b": layer.tensors["b"], "q": layer.tensors["q"]}, layer.attrs)


def forward_i8(layer: Layer, x: np.ndarray) -> np.ndarray:
    """The device's codebook kernel: the dense int8 kernel on the decoded weights (int32 bounds asserted there)."""
    return dense.forward_i8(as_dense(layer), x)


def forward_float(layer: Layer, x: np.ndarray) -> np.ndarray:
    raise NotImplementedError("codebook layers exist only as int8 (quantize a k-means shared dense layer)")


def macs(layer: Layer) -> int:
    return int(layer.attrs["inputs"] * len(layer.tensors["b"]))


def scratch_bytes(layer: Layer) -> tuple[int, int]:
    """(one output row, whole layer) of scratch in bytes as device/udx/codebook.py plans it: the codebook, then rows
    of packed indices, biases and multipliers."""
    k, st = 2 ** layer.attrs["bits"], stride(layer.attrs["inputs"], layer.attrs["bits"])
    return k + dense.tile_bytes(st, 1, 8), k + dense.tile_bytes(st, len(layer.tensors["b"]), 8)


def tensor_spec(dtype: str, n: int, m: int, entry: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    bits = entry["bits"]
    return {"cb": ("u8", (2 ** bits,)), "w": ("u8", (m, stride(n, bits))), "b": ("i32", (m,)), "q": ("u32", (m,))}
