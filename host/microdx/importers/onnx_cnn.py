"""ONNX converters for CNN layers, on activations that microdx keeps as (H, W, C) where ONNX has (N, C, H, W).

Each takes (node name, constant inputs (None where the data flows), attrs, shape (H, W, C)) and returns (microdx ops,
the output shape), as the vector converters of onnx_import do with a width. NCHW is handled here, explicitly:
conv weights (O, I, kh, kw) become OHWI, ONNX pads (top, left, bottom, right) become (top, bottom, left, right), a
BatchNormalization right after a conv is folded into its weights and bias, and a Flatten of an (H, W, C) map
records the CHW order ONNX flattens in, so that onnx_import permutes the next Gemm's weights to microdx's HWC order.
A model imported this way takes its input as (N, H, W, C): transpose NCHW data with x.transpose(0, 2, 3, 1).
"""
from __future__ import annotations

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.ops import conv2d


def _window_attrs(node, a, kernel, what):
    """(stride, pad (top, bottom, left, right)) from ONNX strides / pads / auto_pad / dilations."""
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedOpError(f"node '{node}' ({what}): dilations {a['dilations']}; microdx supports 1")
    stride = tuple(int(s) for s in a.get("strides", [1, 1]))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return stride, ("same", auto == "SAME_UPPER")
    if auto == "VALID":
        return stride, (0, 0, 0, 0)
    p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    return stride, (p[0], p[2], p[1], p[3])


def _resolve(pad, shape, kernel, stride):
    """SAME padding as ONNX defines it: out = ceil(in / stride); the odd cell after (SAME_UPPER) or before."""
    if not (isinstance(pad, tuple) and pad and pad[0] == "same"):
        return pad
    return (*conv2d.same_padding(shape[0], kernel[0], stride[0], pad[1]),
            *conv2d.same_padding(shape[1], kernel[1], stride[1], pad[1]))


def _out(node, what, shape, kernel, stride, pad, channels):
    out = conv2d.out_shape(shape, kernel, stride, pad, channels)
    if out is None:
        raise UnsupportedOpError(f"node '{node}' ({what}): kernel {list(kernel)} does not fit the input "
                                 f"{list(shape)} (H, W, C)")
    return out


def op_Conv(node, ins, a, shape):
    w = ins[1]
    if w is None or w.ndim != 4:
        raise UnsupportedOpError(f"node '{node}' (Conv): 2-D convs with constant weights only (got "
                                 f"{None if w is None else list(w.shape)})")
    w = w.astype(np.float64)
    out_ch, per_group, kh, kw = w.shape
    group = int(a.get("group", 1))
    b = ins[2].astype(np.float64) if len(ins) > 2 and ins[2] is not None else np.zeros(out_ch)
    stride, pad = _window_attrs(node, a, (kh, kw), "Conv")
    pad = _resolve(pad, shape, (kh, kw), stride)
    tensors = {"b": b, "stride": np.array(stride), "pad": np.array(pad)}
    if group == 1 and per_group == shape[2]:
        return [("conv2d", node, {**tensors, "w": w.transpose(0, 2, 3, 1)})], \
            _out(node, "Conv", shape, (kh, kw), stride, pad, out_ch)
    if group == shape[2] == out_ch and per_group == 1:     # depthwise, multiplier 1
        return [("dwconv2d", node, {**tensors, "w": w[:, 0]})], _out(node, "Conv", shape, (kh, kw), stride, pad, out_ch)
    raise UnsupportedOpError(f"node '{node}' (Conv): group {group} with {per_group} input channels per group on "
                             f"{shape[2]} channels; microdx supports group 1 and depthwise (group = channels)")


def _pool(node, ins, a, shape, kind, what):
    if a.get("ceil_mode", 0):
        raise UnsupportedOpError(f"node '{node}' ({what}): ceil_mode=1; export with ceil_mode=False")
    kernel = tuple(int(k) for k in a["kernel_shape"])
    stride, pad = _window_attrs(node, a, kernel, what)
    pad = _resolve(pad, shape, kernel, stride)
    if what == "AveragePool" and a.get("count_include_pad", 0) and any(pad):
        raise UnsupportedOpError(f"node '{node}' (AveragePool): count_include_pad=1 with padding; microdx (like "
                                 f"TFLite) averages the real cells only: export with count_include_pad=False")
    return [(kind, node, {"kernel": np.array(kernel), "stride": np.array(stride), "pad": np.array(pad)})], \
        _out(node, what, shape, kernel, stride, pad, shape[2])


def op_MaxPool(node, ins, a, shape):
    return _pool(node, ins, a, shape, "maxpool2d", "MaxPool")


def op_AveragePool(node, ins, a, shape):
    return _pool(node, ins, a, shape, "avgpool2d", "AveragePool")


def op_GlobalAveragePool(node, ins, a, shape):
    return [("gap", node, {})], shape[2]


def op_ReduceMean(node, ins, a, shape):
    """The mean over H and W (what the dynamo exporter makes of AdaptiveAvgPool2d(1)): a global average pool."""
    axes = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("axes")
    axes = sorted(int(v) % 4 for v in np.asarray(axes).reshape(-1)) if axes is not None else None
    if axes != [2, 3]:
        raise UnsupportedOpError(f"node '{node}' (ReduceMean): over axes {axes}; microdx supports the mean over H "
                                 f"and W (a global average pool)")
    return [("gap", node, {})], shape[2]


def op_BatchNormalization(node, ins, a, shape):
    """Returned as ("fold_bn", ...): onnx_import folds it into the conv before it (the only place it is exact)."""
    if a.get("training_mode", 0):
        raise UnsupportedOpError(f"node '{node}' (BatchNormalization): training_mode=1; export in eval mode")
    if any(v is None for v in ins[1:5]):
        raise UnsupportedOpError(f"node '{node}' (BatchNormalization): scale, bias, mean and var must be constants")
    gamma, beta, mean, var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in ins[1:5])
    s = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    return [("fold_bn", node, {"scale": s, "shift": beta - mean * s})], shape


def op_Flatten(node, ins, a, shape):
    if a.get("axis", 1) != 1:
        raise UnsupportedOpError(f"node '{node}' (Flatten): axis {a['axis']} is not supported (use axis=1)")
    return [("flatten", node, {"chw": np.array(shape)})], int(np.prod(shape))


def op_Reshape(node, ins, a, shape):
    target = ins[1]
    n = int(np.prod(shape))
    if target is None or [int(d) for d in np.asarray(target).reshape(-1)][1:] not in ([-1], [n]):
        raise UnsupportedOpError(f"node '{node}' (Reshape): only flattening a (C, H, W) map to (batch, {n}) is "
                                 f"supported, not {None if target is None else np.asarray(target).tolist()}")
    return op_Flatten(node, ins, {}, shape)


def op_Clip(node, ins, a, shape):
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None else float(np.asarray(hi))
    if lo == 0 and hi == 6:
        return [("relu6", node, {})], shape
    if lo == 0 and (hi is None or hi == np.inf):
        return [("relu", node, {})], shape
    raise UnsupportedOpError(f"node '{node}' (Clip): [{lo}, {hi}]; microdx supports Clip(0, 6) (ReLU6) and "
                             f"Clip(0) (ReLU)")


def op_Relu(node, ins, a, shape):
    return [("relu", node, {})], shape


def op_Identity(node, ins, a, shape):
    return [], shape


op_Dropout = op_Identity

CONVERTERS = {name[3:]: fn for name, fn in list(globals().items()) if name.startswith("op_")}


def fold_bn(ops, node, scale, shift):
    """Fold a BatchNormalization (y = x * scale + shift per channel) into the conv that `ops` ends with."""
    if not ops or ops[-1][0] not in ("conv2d", "dwconv2d"):
        raise UnsupportedOpError(f"node '{node}' (BatchNormalization): only right after a Conv can it be folded "
                                 f"(after {ops[-1][1] if ops else 'the input'})")
    kind, name, t = ops[-1]
    w = t["w"] * scale.reshape(-1, *([1] * (t["w"].ndim - 1)))
    ops[-1] = (kind, name, {**t, "w": w, "b": t["b"] * scale + shift})


def hwc_columns(w, chw) -> np.ndarray:
    """Dense weights (out, C*H*W) that read ONNX's CHW-flattened input, reordered to read microdx's HWC order."""
    h, wd, c = (int(v) for v in chw)
    return w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1)
