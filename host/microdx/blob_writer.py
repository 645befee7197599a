"""Pack a Graph into .dxb bytes: preamble, msgpack header, then one record per layer in execution order."""
from __future__ import annotations

import struct
import zlib

import msgpack
import numpy as np

from microdx import __version__
from microdx.blob_format import DTYPES, KIND_DTYPES, MAGIC, MAJOR, MAX_HEADER, MAX_META, MINOR, NP_TO_DTYPE, PREAMBLE, PREAMBLE_SIZE, RECORD_PREFIX, align
from microdx.errors import FormatError, UnsupportedOpError
from microdx.ir import Graph, Layer, layer_shapes

# header keys carried per layer kind besides kind/dtype/in/out/off/len
LAYER_ATTRS = ("act", "zero", "scale")


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _settle(build):
    """Fixed point of `build(offset) -> (bytes, offset)`: msgpack widths depend on the offsets they hold."""
    guess = 0
    for _ in range(8):
        data, actual = build(guess)
        if actual == guess:
            return data
        guess = actual
    raise RuntimeError("layout did not settle")  # cannot happen: offsets only grow, widths are bounded


def _record(layer: Layer) -> bytes:
    """One layer record: u32 meta length, u32 meta CRC, msgpack meta, then 4-byte-aligned payloads."""
    payloads = []
    for name, arr in layer.tensors.items():
        dtype = NP_TO_DTYPE.get(np.dtype(arr.dtype).newbyteorder("<"))
        if dtype is None:
            raise FormatError(f"layer '{layer.name}' tensor '{name}': dtype {arr.dtype} has no blob type")
        data = np.ascontiguousarray(arr, dtype=DTYPES[dtype]).tobytes()
        payloads.append((name, dtype, list(arr.shape), data))

    def build(first):
        metas, off = [], first
        for name, dtype, shape, data in payloads:
            metas.append({"name": name, "dtype": dtype, "shape": shape, "off": off, "len": len(data), "crc": _crc(data)})
            off = align(off + len(data))
        meta = msgpack.packb({"name": layer.name, "tensors": metas})
        return meta, align(8 + len(meta))

    meta = _settle(build)
    if len(meta) > MAX_META:
        raise FormatError(f"layer '{layer.name}': record meta is {len(meta)} bytes, over the {MAX_META}-byte limit")
    out = bytearray(struct.pack(RECORD_PREFIX, len(meta), _crc(meta)) + meta)
    for _, _, _, data in payloads:
        out += bytes(align(len(out)) - len(out)) + data
    out += bytes(align(len(out)) - len(out))
    return bytes(out)


def _io_spec(shape, dtype, q):
    spec = {"shape": list(shape), "dtype": dtype}
    if q is not None:
        spec["scale"], spec["zero"] = float(q[0]), int(q[1])
    return spec


def pack(graph: Graph) -> bytes:
    """The .dxb bytes of `graph` (float "f32" or quantized "i8"). Deterministic for a given graph."""
    for layer in graph.layers:
        if (layer.kind, layer.dtype) not in KIND_DTYPES:
            raise UnsupportedOpError(f"layer '{layer.name}': the device has no kernel for {layer.kind}/{layer.dtype}"
                                     + (" (run the clean pass to fold it)" if layer.kind == "affine" else ""))
    records = [_record(layer) for layer in graph.layers]
    shapes = layer_shapes(graph)
    out_shape = shapes[-1][1]

    def build(first):
        entries, off = [], first
        for layer, (s_in, s_out), rec in zip(graph.layers, shapes, records):
            entry = {"kind": layer.kind, "dtype": layer.dtype, "in": list(s_in), "out": list(s_out), "off": off, "len": len(rec)}
            entry.update({k: layer.attrs[k] for k in LAYER_ATTRS if k in layer.attrs})
            entries.append(entry)
            off += len(rec)
        header = {
            "model": graph.name,
            "producer": f"microdx {__version__}",
            "input": _io_spec(graph.input_shape, graph.dtype, graph.input_q),
            "output": {**_io_spec(out_shape, graph.dtype, graph.output_q), "post": graph.post},
            "labels": list(graph.labels),
            "frontend": None,
            "layers": entries,
        }
        raw = msgpack.packb(header)
        return raw, align(PREAMBLE_SIZE + len(raw))

    header = _settle(build)
    if len(header) > MAX_HEADER:
        raise FormatError(f"header is {len(header)} bytes, over the {MAX_HEADER}-byte limit (too many layers or labels)")
    pre = struct.pack(PREAMBLE, MAGIC, MAJOR, MINOR, 0, len(header), _crc(header))
    body = pre + header
    return body + bytes(align(len(body)) - len(body)) + b"".join(records)


def write(graph: Graph, path) -> int:
    """Write `graph` to `path` atomically (temp file + rename); return the blob size in bytes."""
    import os

    data = pack(graph)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)
