"""Import an int8 .tflite model as an int8 Graph that keeps TFLite's own quantization and arithmetic.

Weights, biases, zero points and scales are the model's; each layer carries TFLite's requantization (attrs rq: its
Q31 multiplier and shift per output channel, single rounding for FULLY_CONNECTED, double for convolutions, as
microdx.importers.tflite_read measured against TFLite's reference kernels) and the clamp of its fused activation
(zero and hi), so microdx's reference and the device compute exactly TFLite's int8 outputs. The input zero point is
folded into the bias as for microdx's own layers (b' = b - z_in * sum(w), which needs padded cells to hold z_in:
they do). Ops: FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D (multiplier 1), AVERAGE_POOL_2D, MAX_POOL_2D, MEAN over
H and W (kind gap with TFLite's float32 arithmetic, microdx.ops.gap), RESHAPE, a final SOFTMAX (kind softmax with
TFLite's own fixed-point arithmetic, microdx.gemmlowp), with fused RELU / RELU6, and residual ADDs (kind add:
TFLite's ADD arithmetic, the earlier operand kept in the device's skip buffer). No optimizer runs on such a graph:
it is already integer.
"""
from __future__ import annotations

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.fixedpoint import INT32_MAX
from microdx.importers import tflite_read
from microdx.fixedpoint import tflite_multiplier
from microdx.importers.tflite_read import activation_range
from microdx.ir import Graph, Layer
from microdx.ops import add, dense, gap, softmax

WINDOWED = {"CONV_2D": "conv2d", "DEPTHWISE_CONV_2D": "dwconv2d", "AVERAGE_POOL_2D": "avgpool2d",
            "MAX_POOL_2D": "maxpool2d"}


def load(path, m: tflite_read.TfliteModel, name: str) -> Graph:
    """The int8 Graph of the int8 .tflite model `m` read from `path` (one input, one output, sequential)."""
    t = m.tensors
    inp, out = t[m.inputs[0]], t[m.outputs[0]]
    if inp.dtype != np.int8 or out.dtype != np.int8:
        raise UnsupportedOpError(f"{path}: input '{inp.name}' is {np.dtype(inp.dtype).name} and output '{out.name}' "
                                 f"{np.dtype(out.dtype).name}; microdx imports int8 in and out (the converter's "
                                 f"inference_input_type / inference_output_type = tf.int8)")
    layers, cur = [], m.inputs[0]
    made = {cur: -1}   # tensor -> the layer whose output it is (-1: the input), for the skips of residual ADDs
    for op in m.ops:
        where = f"{path}: op '{op.name}' ({op.op})"
        if cur not in (op.inputs[:2] if op.op == "ADD" else op.inputs[:1]):
            raise UnsupportedOpError(f"{where} does not read the previous op's output: microdx imports sequential "
                                     f"models (with residual ADDs)")
        if layers and layers[-1].kind == "softmax":
            raise UnsupportedOpError(f"{where} follows the SOFTMAX; only a final softmax is supported")
        layer = _add(op, t, cur, made, layers, where) if op.op == "ADD" else _convert(op, t, where)
        if layer is not None:
            layers.append(layer)
        cur = op.outputs[0]
        made[cur] = len(layers) - 1
    if cur != m.outputs[0]:
        raise UnsupportedOpError(f"{path}: the output is not the last op's")
    if not layers:
        raise UnsupportedOpError(f"{path}: no layers to import")
    return Graph(name, tuple(int(d) for d in inp.shape[1:]), layers, input_q=_q(inp), output_q=_q(out))


def _q(tensor) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized activation."""
    if tensor.scale is None or len(tensor.scale) != 1:
        raise UnsupportedOpError(f"tensor '{tensor.name}' is not quantized per tensor; microdx keeps per-tensor "
                                 f"activations")
    return float(tensor.scale[0]), int(tensor.zero[0])


def _clamp(op, where, out_q) -> dict:
    """attrs of a fused activation as TFLite clamps it: act relu (lo = the zero point) and hi for RELU6."""
    act = op.options.get("act")
    if act not in (None, "relu", "relu6"):
        raise UnsupportedOpError(f"{where}: fused activation {act}; microdx supports RELU and RELU6")
    lo, hi = activation_range(act, out_q[0], out_q[1])
    attrs = {"act": "relu" if act else None, "zero": out_q[1], "scale": out_q[0]}
    if hi < 127:
        attrs["hi"] = int(hi)
    if act and lo != out_q[1]:   # cannot happen for int8 (the zero point is at least -128); kept as a guard
        raise UnsupportedOpError(f"{where}: its clamp starts at {lo}, not the zero point {out_q[1]}")
    return attrs


def _weights(t, op, where):
    """(int8 weights as int64, per-output-channel scales, int32 bias or zeros) of a layer op."""
    tw = t[op.inputs[1]]
    if tw.data is None or tw.dtype != np.int8:
        raise UnsupportedOpError(f"{where}: weights '{tw.name}' must be constant int8 (a full-integer model)")
    w = tw.data.astype(np.int64)
    out_ch = w.shape[3] if op.op == "DEPTHWISE_CONV_2D" else w.shape[0]
    if tw.scale is None or len(tw.scale) not in (1, out_ch) or np.any(tw.zero != 0):
        raise UnsupportedOpError(f"{where}: weights must be symmetric int8 per tensor or per output channel")
    scale = np.broadcast_to(tw.scale.astype(np.float64), (out_ch,))
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        tb = t[op.inputs[2]]
        if tb.data is None or tb.dtype != np.int32:
            raise UnsupportedOpError(f"{where}: bias '{tb.name}' must be constant int32")
        bias = tb.data.astype(np.int64).reshape(-1)
    else:
        bias = np.zeros(out_ch, np.int64)
    return w, scale, bias


def _requant(w_rows: np.ndarray, bias: np.ndarray, z_in: int, real: np.ndarray, where: str, rq: int) -> dict:
    """The device tensors of a layer with int8 weight rows `w_rows` (out, k): offset-binary weights, the bias with the
    input zero point folded in, and (Q31 multiplier, shift) pairs; refused if its worst case leaves int32."""
    b_fold = bias - z_in * w_rows.sum(axis=1)
    worst = np.abs(b_fold) + dense.ACC_PER_INPUT * w_rows.shape[1]
    if worst.max() > INT32_MAX:
        raise UnsupportedOpError(f"{where}: {w_rows.shape[1]:,} inputs per output: the int32 accumulator could "
                                 f"overflow on some input (worst case {int(worst.max()):,})")
    mult, shift = tflite_multiplier(real)
    q = np.stack([mult, shift & 0xFFFFFFFF], axis=1).astype(np.uint32)
    return {"w": (w_rows + dense.W_OFFSET).astype(np.uint8), "b": b_fold.astype(np.int32), "q": q}, rq


def _add(op, t, cur, made, layers, where) -> Layer:
    """A residual ADD of the previous op's output and an earlier tensor: kind add, TFLite's arithmetic."""
    other = op.inputs[1] if op.inputs[0] == cur else op.inputs[0]
    if other not in made:
        raise UnsupportedOpError(f"{where}: adds '{t[other].name}', which no earlier op made (a constant?); microdx "
                                 f"imports residual ADDs of two activations")
    if tuple(t[other].shape) != tuple(t[cur].shape):
        raise UnsupportedOpError(f"{where}: adds {list(t[other].shape)} to {list(t[cur].shape)}; microdx adds "
                                 f"tensors of one shape (no broadcasting)")
    skip_q, x_q, out_q = _q(t[other]), _q(t[cur]), _q(t[op.outputs[0]])
    return Layer("add", op.name, "i8", {"q": add.params(skip_q, x_q, out_q)},
                 {**_clamp(op, where, out_q), "skip": layers[made[other]].name if made[other] >= 0 else None,
                  "za": skip_q[1], "zb": x_q[1]})


def _convert(op, t, where) -> Layer | None:
    """The int8 Layer of one TFLite op (None for a RESHAPE: a layer views its input in its own shape)."""
    tin, tout = t[op.inputs[0]], t[op.outputs[0]]
    if op.op == "RESHAPE":
        return None
    in_q, out_q = _q(tin), _q(tout)
    shape = tuple(int(d) for d in tin.shape[1:])
    if op.op == "FULLY_CONNECTED":
        w, scale, bias = _weights(t, op, where)
        # GetQuantizedConvolutionMultipler: the scale product in float, the division in double
        real = np.float64(np.float32(in_q[0]) * scale.astype(np.float32)) / np.float64(out_q[0])
        tensors, rq = _requant(w, bias, in_q[1], real, where, 1)
        return Layer("dense", op.name, "i8", tensors, {**_clamp(op, where, out_q), "rq": rq})
    if op.op in WINDOWED:
        kind = WINDOWED[op.op]
        if len(shape) != 3:
            raise UnsupportedOpError(f"{where}: needs an (H, W, C) input, not {list(shape)}")
        if kind in ("conv2d", "dwconv2d"):
            w, scale, bias = _weights(t, op, where)
            kh, kw = int(w.shape[1]), int(w.shape[2])
        else:
            kh, kw = op.options["kernel"]
        geometry = {"in_shape": shape, "kernel": (kh, kw), "stride": tuple(op.options["stride"]),
                    "pad": tflite_read._pads(op, shape[0], shape[1], kh, kw)}
        if kind in ("avgpool2d", "maxpool2d"):
            if in_q != out_q:
                raise UnsupportedOpError(f"{where}: input and output quantization differ; TFLite's int8 pools keep it")
            attrs = _clamp(op, where, out_q)
            if "hi" in attrs:
                raise UnsupportedOpError(f"{where}: a pool with a fused RELU6; microdx's pools clamp at zero only")
            return Layer(kind, op.name, "i8", {}, {**attrs, **geometry})
        # PopulateConvolutionQuantizationParams: per channel, in double
        real = np.float64(in_q[0]) * scale / np.float64(out_q[0])
        if kind == "dwconv2d":
            if op.options["multiplier"] != 1 or w.shape[3] != shape[2]:
                raise UnsupportedOpError(f"{where}: depth multiplier {op.options['multiplier']}; microdx supports 1")
            w = w[0].transpose(2, 0, 1)                  # (1, kh, kw, C) -> (C, kh, kw)
        tensors, rq = _requant(w.reshape(len(w), -1), bias, in_q[1], real, where, 2)
        tensors["w"] = tensors["w"].reshape(w.shape)
        return Layer(kind, op.name, "i8", tensors,
                     {**_clamp(op, where, out_q), **geometry, "in_zero": in_q[1], "rq": rq})
    if op.op == "MEAN":   # Keras' GlobalAveragePooling2D
        axes = t[op.inputs[1]].data
        if len(shape) != 3 or axes is None or sorted(int(a) % 4 for a in axes.reshape(-1)) != [1, 2]:
            raise UnsupportedOpError(f"{where}: a mean over axes {None if axes is None else axes.tolist()}; microdx "
                                     f"supports the mean over H and W (a global average pool)")
        if op.options.get("keep_dims") or in_q == out_q:
            raise UnsupportedOpError(f"{where}: a MEAN with keep_dims or with its input's quantization runs another "
                                     f"TFLite kernel, not reproduced yet; use GlobalAveragePooling2D() (keepdims "
                                     f"False) or AveragePooling2D over the whole map")
        return Layer("gap", op.name, "i8", {}, {"in_shape": shape, "zero": out_q[1], "scale": out_q[0],
                                               "mean": gap.mean_params(in_q, out_q)})
    if op.op == "SOFTMAX":
        if len(shape) != 1:
            raise UnsupportedOpError(f"{where}: a softmax over {list(shape)}; microdx's is over a vector")
        if out_q != softmax.OUT_Q:
            raise UnsupportedOpError(f"{where}: output quantization {out_q}; TFLite's int8 softmax has (1/256, -128)")
        return softmax.tflite(op.name, in_q[0], float(op.options.get("beta", 1.0)))
    raise UnsupportedOpError(f"{where}: microdx does not import {op.op} from an int8 .tflite yet (supported: "
                             f"FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, "
                             f"RESHAPE, ADD, SOFTMAX)")
