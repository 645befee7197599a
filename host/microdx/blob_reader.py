"""Read and check a .dxb blob on the host, independently of the device's decoder (uses msgpack-python).

Raises the same error classes as the device (FormatError, TruncatedError, ChecksumError, VersionError,
UnsupportedLayerError) so both sides can be tested against the same bad blobs.
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np

from microdx.blob_format import DTYPES, KIND_DTYPES, MAGIC, MAJOR, MAX_HEADER, MAX_META, PREAMBLE, PREAMBLE_SIZE, RECORD_PREFIX
from microdx.errors import ChecksumError, FormatError, TruncatedError, UnsupportedLayerError, VersionError
from microdx.ir import Graph, Layer
from microdx.ops import OPS, act, softmax

@dataclass
class Blob:
    header: dict
    graph: Graph
    size: int                 # bytes
    record_bytes: list[int]   # bytes of each layer record


def _crc(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _unpack(raw: bytes, what: str):
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True, max_str_len=len(raw), max_bin_len=0,
                               max_array_len=len(raw), max_map_len=len(raw), max_ext_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, UnicodeDecodeError) as e:
        raise FormatError(f"{what}: not valid msgpack ({e})") from None


MAX_DIM = 1 << 20     # elements in one tensor dimension, and in one conv activation or window (device: blob.MAX_DIM)


def _field(d, key, kind, what):
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise FormatError(f"{what}: field '{key}' missing or not {kind.__name__}")
    return v


def _int(d, key, lo, hi, what):
    v = _field(d, key, int, what)
    if not lo <= v <= hi:
        raise FormatError(f"{what}: {key}={v} outside [{lo}, {hi}]")
    return v


def _shape(d, key, what):
    shape = _field(d, key, list, what)
    if not 1 <= len(shape) <= 4 or not all(isinstance(x, int) and 1 <= x <= MAX_DIM for x in shape):
        raise FormatError(f"{what}: bad shape {key}={shape!r}")
    return tuple(shape)


def parse(data: bytes) -> Blob:
    """Check every part of a blob held in memory and return its header and Graph."""
    size = len(data)
    if size < PREAMBLE_SIZE:
        raise TruncatedError(f"file is {size} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
    magic, major, minor, _flags, hlen, hcrc = struct.unpack_from(PREAMBLE, data)
    if magic != MAGIC:
        raise FormatError(f"not a .dxb blob: magic is {magic!r}, expected {MAGIC!r}")
    if major != MAJOR:
        raise VersionError(f"blob format {major}.{minor}; this reader reads format {MAJOR}.x only (update microdx)")
    if hlen > size - PREAMBLE_SIZE:
        raise TruncatedError(f"header claims {hlen} bytes but the file has {size - PREAMBLE_SIZE} after the preamble")
    if hlen > MAX_HEADER:
        raise FormatError(f"header claims {hlen} bytes, more than the {MAX_HEADER}-byte limit")
    raw = data[PREAMBLE_SIZE:PREAMBLE_SIZE + hlen]
    if _crc(raw) != hcrc:
        raise ChecksumError("header CRC32 mismatch: the file is corrupt")
    header = _unpack(raw, "header")
    if not isinstance(header, dict):
        raise FormatError("header is not a map")
    inp = _field(header, "input", dict, "header")
    out = _field(header, "output", dict, "header")
    in_shape = _shape(inp, "shape", "input")
    out_shape = _shape(out, "shape", "output")
    if _field(inp, "dtype", str, "input") not in ("i8", "f32"):
        raise UnsupportedLayerError(f"input dtype {inp['dtype']!r} is not supported (i8, f32)")
    if inp["dtype"] == "i8":   # real = scale * (q - zero)
        for spec, what in ((inp, "input"), (out, "output")):
            _field(spec, "scale", float, what)
            _int(spec, "zero", -128, 127, what)
    layers, record_bytes, prev = [], [], in_shape
    outs, last_add = [], -1      # each layer's output shape; the index of the last add (one skip is live at a time)
    for i, e in enumerate(_field(header, "layers", list, "header")):
        what = f"layer {i}"
        kind, dtype = _field(e, "kind", str, what), _field(e, "dtype", str, what)
        if (kind, dtype) not in KIND_DTYPES:
            raise UnsupportedLayerError(f"{what}: no kernel for {kind}/{dtype}")
        off = _int(e, "off", 0, 0x7FFFFFFF, what)
        rlen = _int(e, "len", 8, 0x7FFFFFFF, what)
        if off + rlen > size:
            raise TruncatedError(f"{what}: record of {rlen} bytes at offset {off} runs past the end of the file ({size} bytes)")
        tensors = _read_record(data, off, rlen, what)
        name = tensors.pop("__name__")
        s_in, s_out = _shape(e, "in", what), _shape(e, "out", what)
        if math.prod(s_in) != math.prod(prev):   # a reshape is free: a layer may view the buffer in its own shape
            raise FormatError(f"{what}: input shape {list(s_in)} does not follow {list(prev)}")
        prev = s_out
        attrs = {k: e[k] for k in ("act", "zero", "scale") if k in e}
        if "rq" in e or "hi" in e:   # TFLite's requantization and clamp (layers of int8 .tflite models)
            if dtype != "i8" or kind not in ("dense", "conv2d", "dwconv2d", "add") or (kind == "add" and "rq" in e):
                raise FormatError(f"{what}: rq / hi belong to int8 dense, conv (and hi to add) layers, not "
                                  f"{kind}/{dtype}")
            if "rq" in e:
                attrs["rq"] = _int(e, "rq", 1, 2, what)
            if "hi" in e:   # the clamp's top, not below its bottom (the zero point under ReLU)
                lo = _int(e, "zero", -128, 127, what) if e.get("act") == "relu" else -128
                attrs["hi"] = _int(e, "hi", lo, 127, what)
        n_in, n_out = math.prod(s_in), s_out[-1]      # a dense layer takes any input flattened
        if kind not in ("conv2d", "dwconv2d", "avgpool2d", "maxpool2d", "act", "add") and len(s_out) != 1:
            raise FormatError(f"{what}: a {kind} layer outputs a vector, not {list(s_out)}")
        if kind == "codebook":
            attrs["bits"] = _int(e, "bits", 2, 6, what)
            attrs["inputs"] = n_in
        if kind == "sparse":   # stored weights: at least 1, at most all; the fullest row at most one row's worth
            attrs["nnz"] = _int(e, "nnz", 1, n_in * n_out, what)
            attrs["row_nnz"] = _int(e, "row_nnz", 1, n_in, what)
            attrs["inputs"] = n_in
        if kind in ("conv2d", "dwconv2d", "avgpool2d", "maxpool2d"):
            attrs.update(_conv_attrs(e, s_in, s_out, dtype == "i8" and kind in ("conv2d", "dwconv2d"), what))
            if kind != "conv2d" and s_in[2] != s_out[2]:
                raise FormatError(f"{what}: {kind} keeps the channels, not {s_in[2]} -> {s_out[2]}")
        if kind in ("act", "softmax"):   # elementwise: the shape is kept; n_in is what the tables are applied to
            if s_in != s_out or math.prod(s_in) > MAX_DIM or (kind == "softmax" and n_in > softmax.MAX_LOGITS):
                raise FormatError(f"{what}: {kind} keeps the shape (at most {MAX_DIM} values), not {list(s_in)} -> "
                                  f"{list(s_out)}")
            if kind == "softmax" and "tfl" in e:   # TFLite's own arithmetic (an imported int8 .tflite)
                if dtype != "i8":
                    raise FormatError(f"{what}: tfl is for int8 softmax layers")
                attrs["tfl"] = _int(e, "tfl", 1, 1, what)
                if n_in > softmax.MAX_TFL_LOGITS:
                    raise FormatError(f"{what}: TFLite's softmax sums at most {softmax.MAX_TFL_LOGITS} exps in int32, "
                                      f"not {n_in}")
            if kind == "act":
                attrs["func"] = _field(e, "func", str, what)
                if attrs["func"] not in act.FUNCS:
                    raise FormatError(f"{what}: unknown activation function {attrs['func']!r}")
        if kind == "add":
            k = _int(e, "skip", -1, i - 1, what)
            if k < last_add:
                raise FormatError(f"{what}: adds layer {k}'s output, before the previous add (layer "
                                  f"{last_add}): one skip buffer is live at a time")
            last_add = i
            attrs["skip"] = None if k < 0 else layers[k].name   # the IR names it
            skip = in_shape if k < 0 else outs[k]
            if s_in != s_out or math.prod(skip) != n_in or n_in > MAX_DIM:
                raise FormatError(f"{what}: add keeps the shape and adds {list(skip)}, not {list(s_in)} -> "
                                  f"{list(s_out)}")
            if dtype == "i8":
                attrs["za"], attrs["zb"] = _int(e, "za", -128, 127, what), _int(e, "zb", -128, 127, what)
        if kind == "gap":
            if len(s_in) != 3 or s_out != (s_in[2],) or math.prod(s_in) > MAX_DIM:
                raise FormatError(f"{what}: gap maps (H, W, C) to (C,), not {list(s_in)} -> {list(s_out)}")
            attrs["in_shape"] = tuple(s_in)
            if "mean" in e:   # TFLite's float32 mean (an imported int8 .tflite): its (scale, bias)
                v = e["mean"]
                if dtype != "i8" or not isinstance(v, list) or len(v) != 2 or not all(
                        isinstance(a, float) and math.isfinite(a) for a in v):
                    raise FormatError(f"{what}: mean must be two finite floats on an int8 gap layer, not {v!r}")
                attrs["mean"] = tuple(v)
        for tname, (tdtype, tshape) in OPS[kind].tensor_spec(dtype, n_in, n_out, attrs).items():
            t = tensors.get(tname)
            if t is None:
                raise FormatError(f"{what}: tensor '{tname}' missing")
            if t.dtype != DTYPES[tdtype] or t.shape != tshape:
                raise FormatError(f"{what}: tensor '{tname}' is {t.dtype}{list(t.shape)}, expected {tdtype}{list(tshape)}")
        if dtype == "i8":
            _int(e, "zero", -128, 127, what)
        if e.get("act") not in (None, "relu"):
            raise FormatError(f"{what}: unknown activation {e.get('act')!r}")
        if kind == "sparse":
            _check_csr(tensors, attrs, what)
        layers.append(Layer(kind, name, dtype, tensors, attrs))
        outs.append(s_out)
        record_bytes.append(rlen)
    if not layers:
        raise FormatError("header: model has no layers")
    if prev != out_shape:
        raise FormatError(f"output shape {list(out_shape)} does not match the last layer's {list(prev)}")

    def q(spec):
        return (float(spec["scale"]), int(spec["zero"])) if "scale" in spec else None

    graph = Graph(str(header.get("model", "")), in_shape, layers, list(header.get("labels") or []),
                  out.get("post"), q(inp), q(out), str(header.get("recipe") or ""),
                  _frontend(data, size, header.get("frontend"), math.prod(in_shape)))
    return Blob(header, graph, size, record_bytes)


FRONTEND_INTS = {"rate": (1000, 96000), "frame": (16, 1024), "hop": (1, 1024), "n_fft": (16, 1024),
                 "n_mels": (1, 128), "n_mfcc": (1, 128), "preemph_q15": (0, 32767), "frames": (1, 1024),
                 "in_mult": (1, (1 << 14) - 1), "in_shift": (1, 40), "in_zero": (-128, 127)}


def _frontend(data: bytes, size: int, e, n_inputs: int) -> dict | None:
    """The header's `frontend` entry, checked (fields, that its tables are the ones its parameters make, that the
    model takes its frames), without its record's offset and length; None without one."""
    from microdx.features import fixed_mfcc

    if e is None:
        return None
    what = "frontend"
    if not isinstance(e, dict) or e.get("kind") != "mfcc":
        raise FormatError(f"{what}: an entry of kind 'mfcc' expected, not {e!r:.60}")
    out = {"kind": "mfcc", **{k: _int(e, k, lo, hi, what) for k, (lo, hi) in FRONTEND_INTS.items()}}
    off, rlen = _int(e, "off", 0, 0x7FFFFFFF, what), _int(e, "len", 8, 0x7FFFFFFF, what)
    if off + rlen > size:
        raise TruncatedError(f"{what}: record of {rlen} bytes at offset {off} runs past the end of the file ({size} "
                             f"bytes)")
    if out["frames"] * out["n_mfcc"] != n_inputs:
        raise FormatError(f"{what}: {out['frames']} frames x {out['n_mfcc']} MFCCs is not the model's {n_inputs} "
                          f"inputs")
    try:
        want = fixed_mfcc.record_tensors(fixed_mfcc.params_of(out))
    except ValueError as err:
        raise FormatError(f"{what}: {err}") from None
    got = _read_record(data, off, rlen, what)
    got.pop("__name__")
    if set(got) != set(want) or any(got[k].dtype != v.dtype or not np.array_equal(got[k], v) for k, v in want.items()):
        raise FormatError(f"{what}: its tables are not the ones its parameters make")
    return out


def _ints(e, key, count, lo, hi, what) -> tuple:
    v = _field(e, key, list, what)
    if len(v) != count or not all(isinstance(a, int) and not isinstance(a, bool) and lo <= a <= hi for a in v):
        raise FormatError(f"{what}: {key}={v!r} must be {count} integers in [{lo}, {hi}]")
    return tuple(v)


def _conv_attrs(e, s_in, s_out, pads_with_zero_point, what) -> dict:
    """kernel, stride, pad of a windowed entry (conv, depthwise, pooling), checked against its in and out shapes, and
    in_zero where padded cells hold the input zero point (int8 convs)."""
    from microdx.ops import conv2d

    if len(s_in) != 3 or len(s_out) != 3:
        raise FormatError(f"{what}: conv2d maps (H, W, C) to (H, W, C), not {list(s_in)} -> {list(s_out)}")
    kernel = _ints(e, "kernel", 2, 1, 1 << 10, what)
    stride = _ints(e, "stride", 2, 1, 1 << 10, what)
    pad = _ints(e, "pad", 4, 0, 1 << 10, what)
    if max(pad[:2]) >= kernel[0] or max(pad[2:]) >= kernel[1]:
        raise FormatError(f"{what}: conv2d pad {list(pad)} must be smaller than the kernel {list(kernel)}")
    # a conv's activations are not bounded by its weights in the file, as a dense layer's are: cap them and the
    # window at a tensor dimension's limit (the device refuses the same)
    if max(math.prod(s_in), math.prod(s_out), kernel[0] * kernel[1] * s_in[2]) > MAX_DIM:
        raise FormatError(f"{what}: conv2d {list(s_in)} -> {list(s_out)}, kernel {list(kernel)}: more than "
                          f"{MAX_DIM} elements in an activation or a window")
    if conv2d.out_shape(s_in, kernel, stride, pad, s_out[2]) != tuple(s_out):
        raise FormatError(f"{what}: conv2d {list(s_in)} -> {list(s_out)} does not follow from kernel {list(kernel)}, "
                          f"stride {list(stride)}, pad {list(pad)}")
    attrs = {"in_shape": tuple(s_in), "kernel": kernel, "stride": stride, "pad": pad}
    if pads_with_zero_point:
        attrs["in_zero"] = _int(e, "in_zero", -128, 127, what)
    return attrs


def _check_csr(tensors: dict, attrs: dict, what: str) -> None:
    """Row pointers from 0 to nnz, never decreasing, no row over row_nnz; indices below the input count."""
    ptr, steps = tensors["ptr"].astype(np.int64), np.diff(tensors["ptr"].astype(np.int64))
    if ptr[0] != 0 or ptr[-1] != attrs["nnz"] or steps.min() < 0 or steps.max() > attrs["row_nnz"]:
        raise FormatError(f"{what}: sparse row pointers are not 0 .. {attrs['nnz']} in steps of 0 .. {attrs['row_nnz']}")
    if tensors["idx"].max() >= attrs["inputs"]:
        raise FormatError(f"{what}: sparse column index {int(tensors['idx'].max())} >= {attrs['inputs']} inputs")


def _read_record(data: bytes, off: int, rlen: int, what: str) -> dict:
    mlen, mcrc = struct.unpack_from(RECORD_PREFIX, data, off)
    if mlen > rlen - 8 or mlen > MAX_META:
        raise FormatError(f"{what}: record meta claims {mlen} bytes (record {rlen}, limit {MAX_META})")
    raw = data[off + 8:off + 8 + mlen]
    if _crc(raw) != mcrc:
        raise ChecksumError(f"{what}: record meta CRC32 mismatch: the file is corrupt")
    meta = _unpack(raw, f"{what} record meta")
    tensors = {"__name__": str(_field(meta, "name", str, what))}
    for t in _field(meta, "tensors", list, what):
        name = _field(t, "name", str, what)
        tw = f"{what} tensor {name}"
        dtype = _field(t, "dtype", str, tw)
        if dtype not in DTYPES:
            raise FormatError(f"{tw}: unknown dtype {dtype!r}")
        shape = _shape(t, "shape", tw)
        toff = _int(t, "off", 8 + mlen, rlen, tw)
        tlen = _int(t, "len", 0, rlen - toff, tw)
        if toff % 4:
            raise FormatError(f"{tw}: payload offset {toff} is not 4-byte aligned")
        need = math.prod(shape) * DTYPES[dtype].itemsize
        if tlen != need:
            raise FormatError(f"{tw}: {tlen} bytes but shape {list(shape)} of {dtype} needs {need}")
        payload = data[off + toff:off + toff + tlen]
        if _crc(payload) != _field(t, "crc", int, tw):
            raise ChecksumError(f"{tw}: payload CRC32 mismatch: the file is corrupt (re-copy the blob)")
        tensors[name] = np.frombuffer(payload, dtype=DTYPES[dtype]).reshape(shape).copy()
    return tensors


def read(path) -> Blob:
    """Read and check the blob at `path`."""
    return parse(Path(path).read_bytes())


assert set(k for k, _ in KIND_DTYPES) <= set(OPS)
