"""Import a float .tflite model as a float Graph, which microdx then quantizes like an ONNX model.

A sequential chain of FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1), AVERAGE_POOL_2D,
MAX_POOL_2D, MEAN over H and W (Keras' GlobalAveragePooling2D), RESHAPE, residual ADDs (kind add) and a final SOFTMAX,
with fused RELU / RELU6, NHWC as TFLite stores it (microdx's HWC: no
transposes; conv weights are OHWI in both). SAME padding becomes TFLite's explicit padding (the extra cell after).
int8 .tflite files keep their own quantization and TFLite's arithmetic instead: microdx.importers.tflite_int8.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.importers import tflite_int8, tflite_read
from microdx.ir import Graph, canonicalize, output_layer
from microdx.ops import conv2d


def load(path) -> Graph:
    """The Graph of the .tflite model at `path`: float for a float model, int8 (tflite_int8) for a full-integer one."""
    m = tflite_read.read(path)
    t = m.tensors
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise UnsupportedOpError(f"{path}: {len(m.inputs)} inputs and {len(m.outputs)} outputs; microdx imports "
                                 f"models with one of each")
    inp = t[m.inputs[0]]
    if inp.dtype != np.float32:   # a full-integer model: its own quantization and arithmetic are kept
        return tflite_int8.load(path, m, Path(path).stem)
    shape = tuple(inp.shape[1:])
    ops, cur, post = [], m.inputs[0], []
    made = {cur: None}   # tensor -> the layer whose output it is (None: the input), for residual ADDs
    for op in m.ops:
        where = f"{path}: op '{op.name}' ({op.op})"
        if cur not in (op.inputs[:2] if op.op == "ADD" else op.inputs[:1]):
            raise UnsupportedOpError(f"{where} does not read the previous op's output: microdx imports sequential "
                                     f"models (with residual ADDs)")
        if post:
            raise UnsupportedOpError(f"{where} follows the SOFTMAX; only a final softmax is supported")
        if op.op == "ADD":
            other = op.inputs[1] if op.inputs[0] == cur else op.inputs[0]
            if other not in made or tuple(t[other].shape) != tuple(t[cur].shape):
                raise UnsupportedOpError(f"{where}: adds '{t[other].name}', which is not an earlier activation of "
                                         f"the same shape; microdx imports residual ADDs of two activations")
            ops += [("add", op.name, {"skip": made[other]})] + _act(op)
        else:
            ops += _convert(op, t, shape, where)
        cur = op.outputs[0]
        made[cur] = output_layer(ops)
        if op.op == "SOFTMAX":
            post.append(op)
        shape = tuple(t[cur].shape[1:])
    if cur != m.outputs[0]:
        raise UnsupportedOpError(f"{path}: the output is not the last op's")
    return canonicalize(Path(path).stem, tuple(inp.shape[1:]), ops)


def _const(t, i, where, what):
    if i < 0:
        return None
    if t[i].data is None:
        raise UnsupportedOpError(f"{where}: its {what} '{t[i].name}' is not a constant")
    return t[i].data.astype(np.float32)


def _act(op) -> list:
    act = op.options.get("act")
    return [(act, op.name + "/" + act, {})] if act else []


def _convert(op, t, shape, where) -> list:
    """The canonicalize ops (microdx.ir) of one TFLite op on an input of `shape` (without the batch)."""
    name = op.name
    if op.op == "FULLY_CONNECTED":
        ops = [("flatten", name + "/flatten", {})] if len(shape) > 1 else []
        return ops + [("dense", name, {"w": _const(t, op.inputs[1], where, "weights"),
                                       "b": _const(t, op.inputs[2], where, "bias") if len(op.inputs) > 2 else None})
                      ] + _act(op)
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = _const(t, op.inputs[1], where, "weights")
        if op.op == "DEPTHWISE_CONV_2D":
            if op.options["multiplier"] != 1 or w.shape[3] != shape[2]:
                raise UnsupportedOpError(f"{where}: depth multiplier {op.options['multiplier']}; microdx supports 1")
            w = w[0].transpose(2, 0, 1)                  # (1, kh, kw, C) -> (C, kh, kw)
        kh, kw = (w.shape[1], w.shape[2])
        tensors = {"w": w, "b": _const(t, op.inputs[2], where, "bias") if len(op.inputs) > 2 else None,
                   "stride": np.array(op.options["stride"]), "pad": np.array(_pad(op, shape, kh, kw))}
        return [("conv2d" if op.op == "CONV_2D" else "dwconv2d", name, tensors)] + _act(op)
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = op.options["kernel"]
        kind = "avgpool2d" if op.op == "AVERAGE_POOL_2D" else "maxpool2d"
        return [(kind, name, {"kernel": np.array([kh, kw]), "stride": np.array(op.options["stride"]),
                              "pad": np.array(_pad(op, shape, kh, kw))})] + _act(op)
    if op.op == "RESHAPE":
        new = tuple(t[op.outputs[0]].shape[1:])
        if math.prod(new) != math.prod(shape):
            raise UnsupportedOpError(f"{where}: reshapes {list(shape)} to {list(new)}")
        return [("flatten", name, {})] if len(new) == 1 else [("reshape", name, {"shape": np.array(new)})]
    if op.op == "MEAN":    # Keras' GlobalAveragePooling2D
        axes = _const(t, op.inputs[1], where, "axes")
        if len(shape) != 3 or axes is None or sorted(int(a) % 4 for a in axes.reshape(-1)) != [1, 2]:
            raise UnsupportedOpError(f"{where}: a mean over axes {None if axes is None else axes.tolist()}; microdx "
                                     f"supports the mean over H and W (a global average pool)")
        return [("gap", name, {})]
    if op.op == "SOFTMAX":
        if op.options.get("beta", 1.0) != 1.0:
            raise UnsupportedOpError(f"{where}: softmax beta {op.options['beta']}; microdx supports 1")
        return [("softmax", name, {})]
    raise UnsupportedOpError(f"{where}: microdx cannot convert {op.op} from a float .tflite yet")


def _pad(op, shape, kh, kw) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) as TFLite pads: SAME puts the odd cell after, VALID pads nothing."""
    if not op.options["same"]:
        return 0, 0, 0, 0
    sh, sw = op.options["stride"]
    return (*conv2d.same_padding(shape[0], kh, sh), *conv2d.same_padding(shape[1], kw, sw))
