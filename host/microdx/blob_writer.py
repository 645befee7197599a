"""Pack a Graph into .dxb bytes: preamble, msgpack header, then one record per layer in execution order."""
from __future__ import annotations

import struct
import zlib

import msgpack
import numpy as np

from microdx import __version__
from microdx.blob_format import DTYPES, KIND_DTYPES, MAGIC, MAJOR, MAX_HEADER, MAX_META, MINOR, NP_TO_DTYPE, PREAMBLE, PREAMBLE_SIZE, RECORD_PREFIX, align
from microdx.errors import FormatError, UnsupportedOpError
from microdx.ir import Graph, Layer, layer_shapes, skip_index

# header keys carried per layer kind besides kind/dtype/in/out/off/len
LAYER_ATTRS = ("act", "zero", "scale", "nnz", "row_nnz", "bits", "kernel", "stride", "pad", "in_zero", "func", "hi",
               "rq", "skip", "za", "zb", "tfl", "mean")


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
    front = None
    if graph.frontend is not None:   # the front-end's tables: a record after the layers'
        need = graph.frontend["frames"] * graph.frontend["n_mfcc"]
        if graph.input_size != need:
            raise UnsupportedOpError(f"the front-end gives {graph.frontend['frames']} frames x "
                                     f"{graph.frontend['n_mfcc']} MFCCs = {need} inputs; the model takes "
                                     f"{graph.input_size}")
        from microdx.features import fixed_mfcc

        front = _record(Layer("frontend", "frontend", "i8",
                              fixed_mfcc.record_tensors(fixed_mfcc.params_of(graph.frontend))))
    shapes = layer_shapes(graph)
    out_shape = shapes[-1][1]

    def build(first):
        entries, off = [], first
        for layer, (s_in, s_out), rec in zip(graph.layers, shapes, records):
            entry = {"kind": layer.kind, "dtype": layer.dtype, "in": list(s_in), "out": list(s_out), "off": off, "len": len(rec)}
            entry.update({k: list(v) if isinstance(v, tuple) else v
                          for k, v in layer.attrs.items() if k in LAYER_ATTRS})
            if layer.kind == "add":   # the device takes the skip by index (-1: the input)
                entry["skip"] = skip_index(graph.layers, len(entries))
            entries.append(entry)
            off += len(rec)
        header = {
            "model": graph.name,
            "producer": f"microdx {__version__}",
            "input": _io_spec(graph.input_shape, graph.dtype, graph.input_q),
            "output": {**_io_spec(out_shape, graph.dtype, graph.output_q), "post": graph.post},
            "labels": list(graph.labels),
            "frontend": None if front is None else {**graph.frontend, "off": off, "len": len(front)},
            "layers": entries,
        }
        if graph.recipe:
            header["recipe"] = graph.recipe
        raw = msgpack.packb(header)
        return raw, align(PREAMBLE_SIZE + len(raw))

    header = _settle(build)
    if len(header) > MAX_HEADER:
        raise FormatError(f"header is {len(header)} bytes, over the {MAX_HEADER}-byte limit (too many layers or labels)")
    pre = struct.pack(PREAMBLE, MAGIC, MAJOR, MINOR, 0, len(header), _crc(header))
    body = pre + header
    return body + bytes(align(len(body)) - len(body)) + b"".join(records) + (front or b"")


def write(graph: Graph, path) -> int:
    """Write `graph` to `path` atomically and return the blob size in bytes.

    The bytes go to a temporary file in the target folder, renamed over `path` once complete; on any failure the
    temporary file is removed, so a failed write leaves neither a partial blob nor a stray file. A `path` that is
    a folder, or in a folder that does not exist, raises the matching OSError naming it before anything is written.
    """
    import errno
    import os
    import tempfile
    from pathlib import Path

    data = pack(graph)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give the blob a file name, e.g. model.dxb", str(path))
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder for the output file", str(folder))
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder for the output file", str(folder))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:   # name the folder, not the random temporary name
        raise type(e)(e.errno, f"cannot write in this folder ({e.strerror})", str(folder)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; a blob is an ordinary file, as open() makes it
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return len(data)
