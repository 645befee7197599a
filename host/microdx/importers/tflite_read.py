"""Read a .tflite flatbuffer (with the `tflite` package: the schema's generated classes) into plain tensors and
ops, and run its int8 ops with exactly the integer arithmetic of TFLite's reference kernels.

This is the first stage of the TFLite importer (issue 8): `read` keeps the model's own quantization (per-channel
weight scales, per-tensor activations, int32 biases, zero points) and `run_int8` is TFLite's arithmetic as microdx
reproduces it (numpy, every intermediate checked inside int32), checked against TFLite's own reference kernels on the
committed fixtures (tests/test_tflite_read.py). Mapping these ops onto microdx's layer kinds and the device comes next.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from microdx.errors import ModelFileError, UnsupportedOpError
from microdx.fixedpoint import check_int32, tflite_multiplier, tflite_requantize
from microdx.ir import Layer
from microdx.ops import conv2d

# TensorType codes of the schema this reader handles
_DTYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}
# activation function codes (ActivationFunctionType)
_ACT = {0: None, 1: "relu", 3: "relu6"}
SUPPORTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE",
             "SOFTMAX", "ADD", "MEAN")


@dataclass
class Tensor:
    name: str
    shape: tuple
    dtype: type
    data: np.ndarray | None           # constant tensors (weights, biases, shapes); None for activations
    scale: np.ndarray                 # per-tensor (1 value) or per-channel, float32 as stored
    zero: np.ndarray
    axis: int                         # the quantized dimension of per-channel scales


@dataclass
class Op:
    op: str
    name: str                         # the op's first output tensor name (up to a ';'), what TFLite tools show
    inputs: list[int]                 # tensor indices, -1 for an absent optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TfliteModel:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]


def read(path) -> TfliteModel:
    """The first subgraph of the .tflite file at `path`. ModelFileError if it is not one; UnsupportedOpError naming
    the op and its output tensor for an op outside SUPPORTED."""
    import tflite
    from tflite.utils import opcode2name

    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelFileError(f"{path}: not a .tflite file (no TFL3 identifier)")
    try:
        m = tflite.Model.GetRootAsModel(buf, 0)
        g = m.Subgraphs(0)
        tensors = [_tensor(m, g.Tensors(i)) for i in range(g.TensorsLength())]
        ops = []
        for i in range(g.OperatorsLength()):
            o = g.Operators(i)
            code = m.OperatorCodes(o.OpcodeIndex())
            name = opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
            outs = [int(t) for t in o.OutputsAsNumpy()]
            if name not in SUPPORTED:
                raise UnsupportedOpError(f"{path}: op '{tensors[outs[0]].name.split(';')[0]}' is {name}, which microdx cannot "
                                         f"convert; supported: {', '.join(SUPPORTED)}")
            # the output tensor's name, up to the first ';' (TFLite joins the names of fused ops)
            ops.append(Op(name, tensors[outs[0]].name.split(";")[0], [int(t) for t in o.InputsAsNumpy()], outs,
                          _options(name, o)))
        return TfliteModel(tensors, ops, [int(t) for t in g.InputsAsNumpy()], [int(t) for t in g.OutputsAsNumpy()])
    except (UnsupportedOpError, ModelFileError):
        raise
    except Exception as e:   # a damaged flatbuffer raises whatever its offsets lead to
        raise ModelFileError(f"{path}: cannot read the .tflite flatbuffer ({type(e).__name__}: {e})") from None


def _tensor(m, t) -> Tensor:
    dtype = _DTYPES.get(t.Type())
    if dtype is None:
        raise UnsupportedOpError(f"tensor '{t.Name().decode()}' has TFLite type {t.Type()}, which microdx cannot "
                                 f"convert (int8, int32, float32)")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    raw = m.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() < m.BuffersLength() else 0
    data = None
    if not isinstance(raw, int) and raw.size:
        data = np.frombuffer(raw.tobytes(), dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    q = t.Quantization()
    scale = q.ScaleAsNumpy().astype(np.float32) if q is not None and q.ScaleLength() else np.zeros(0, np.float32)
    zero = q.ZeroPointAsNumpy().astype(np.int64) if q is not None and q.ZeroPointLength() else np.zeros(0, np.int64)
    return Tensor(t.Name().decode(), shape, dtype, data, scale, zero, q.QuantizedDimension() if q is not None else 0)


def _options(name: str, o) -> dict:
    import tflite

    table = o.BuiltinOptions()
    cls = {"FULLY_CONNECTED": tflite.FullyConnectedOptions, "CONV_2D": tflite.Conv2DOptions,
           "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
           "MAX_POOL_2D": tflite.Pool2DOptions, "ADD": tflite.AddOptions, "SOFTMAX": tflite.SoftmaxOptions,
           "MEAN": tflite.ReducerOptions}.get(name)
    if cls is None or table is None:
        return {}
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    out = {}
    if hasattr(opt, "FusedActivationFunction"):
        act = opt.FusedActivationFunction()
        if act not in _ACT:
            raise UnsupportedOpError(f"{name} with fused activation code {act}: microdx supports none, RELU, RELU6")
        out["act"] = _ACT[act]
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        out["same"] = opt.Padding() == 0          # Padding.SAME = 0, VALID = 1
        out["stride"] = (opt.StrideH(), opt.StrideW())
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dil = (opt.DilationHFactor(), opt.DilationWFactor())
        if dil != (1, 1):
            raise UnsupportedOpError(f"{name} with dilation {dil}: microdx supports dilation 1 only")
    if name == "DEPTHWISE_CONV_2D":
        out["multiplier"] = opt.DepthMultiplier()
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        out["kernel"] = (opt.FilterHeight(), opt.FilterWidth())
    if name == "SOFTMAX":
        out["beta"] = opt.Beta()
    if name == "MEAN":
        out["keep_dims"] = bool(opt.KeepDims())
    return out


# --- TFLite's integer arithmetic -----------------------------------------------------------------------------------

# TFLite's QuantizeMultiplier: microdx.fixedpoint's, beside its requantization (the name the tests and importers use)
quantize_multiplier = tflite_multiplier


def activation_range(act, scale: float, zero: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8: the clamp of a fused activation."""
    def q(f):   # zero + std::round(f / scale), the division in float as TFLite does it
        return zero + _round_away(np.float32(f) / np.float32(scale))

    if act == "relu":
        return max(-128, q(0.0)), 127
    if act == "relu6":
        return max(-128, q(0.0)), min(127, q(6.0))
    return -128, 127


def _round_away(v) -> int:
    v = float(v)
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def _pads(op: Op, h: int, w: int, kh: int, kw: int) -> tuple[int, int, int, int]:
    if not op.options["same"]:
        return 0, 0, 0, 0
    sh, sw = op.options["stride"]
    return (*conv2d.same_padding(h, kh, sh), *conv2d.same_padding(w, kw, sw))


def _windows(x: np.ndarray, kh: int, kw: int, stride, pads, fill) -> np.ndarray:
    """(N, Ho, Wo, kh, kw, C) windows of NHWC `x` padded with `fill` (microdx.ops.conv2d's im2col)."""
    layer = Layer("conv2d", "", "f32", {}, {"kernel": (kh, kw), "stride": tuple(stride), "pad": tuple(pads)})
    cols = conv2d.windows(layer, x, fill)
    return cols.reshape(*cols.shape[:3], kh, kw, x.shape[3])


def _requant_out(acc, mult, shift, zero, lo, hi, single=False) -> np.ndarray:
    check_int32("accumulator", acc)
    return np.clip(tflite_requantize(acc, mult, shift, single) + zero, lo, hi).astype(np.int64)


def run_int8(model: TfliteModel, x: np.ndarray, keep=()) -> dict[int, np.ndarray]:
    """Run the int8 model on int8 inputs `x` (N, *input shape without the batch); returns {tensor index: int8
    values} for the model's outputs and the tensor indices in `keep`, as TFLite's reference kernels compute them."""
    t = model.tensors
    vals = {model.inputs[0]: np.asarray(x, dtype=np.int64).reshape(len(x), *t[model.inputs[0]].shape[1:])}
    for op in model.ops:
        vals[op.outputs[0]] = _run_op(model, op, vals)
    wanted = set(model.outputs) | set(keep)
    return {i: vals[i].astype(np.int8) for i in wanted}


def _run_op(model: TfliteModel, op: Op, vals: dict) -> np.ndarray:
    t = model.tensors
    xi = op.inputs[0]
    x = vals[xi]
    tin, tout = t[xi], t[op.outputs[0]]
    s_in, z_in = float(tin.scale[0]), int(tin.zero[0])
    s_out, z_out = float(tout.scale[0]), int(tout.zero[0])
    lo, hi = activation_range(op.options.get("act"), s_out, z_out)
    if op.op == "RESHAPE":
        return x.reshape(len(x), *tout.shape[1:])
    if op.op in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
        tw = t[op.inputs[1]]
        w = tw.data.astype(np.int64)
        bias = t[op.inputs[2]].data.astype(np.int64) if len(op.inputs) > 2 and op.inputs[2] >= 0 else 0
        if op.op == "FULLY_CONNECTED":
            # GetQuantizedConvolutionMultipler: the scale product in float, then the division in double
            real = np.float64(np.float32(s_in) * tw.scale) / np.float64(s_out)
            acc = (x.reshape(len(x), -1) - z_in) @ w.T + bias
        else:
            # PopulateConvolutionQuantizationParams: per channel, in double
            real = np.float64(s_in) * tw.scale.astype(np.float64) / np.float64(s_out)
            kh, kw = w.shape[1], w.shape[2]
            cols = _windows(x - z_in, kh, kw, op.options["stride"], _pads(op, x.shape[1], x.shape[2], kh, kw), 0)
            if op.op == "CONV_2D":      # w (O, kh, kw, I)
                acc = np.einsum("nhwabc,oabc->nhwo", cols, w) + bias
            else:                       # w (1, kh, kw, C * multiplier)
                mult = op.options["multiplier"]
                cols = np.repeat(cols, mult, axis=5)
                acc = np.einsum("nhwabc,abc->nhwc", cols, w[0]) + bias
        m, sh = quantize_multiplier(real)
        # measured against TFLite's reference kernels (tests/test_tflite_read.py): its per-channel FULLY_CONNECTED
        # rounds once, its convolutions twice
        return _requant_out(acc, m, sh, z_out, lo, hi, single=op.op == "FULLY_CONNECTED")
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = op.options["kernel"]
        pads = _pads(op, x.shape[1], x.shape[2], kh, kw)
        if op.op == "MAX_POOL_2D":
            y = _windows(x, kh, kw, op.options["stride"], pads, -(1 << 20)).max(axis=(3, 4))
        else:   # the sum over the real cells, divided by their count, rounded half away from zero (C division)
            s = _windows(x, kh, kw, op.options["stride"], pads, 0).sum(axis=(3, 4))
            n = _windows(np.ones((1, *x.shape[1:3], 1), np.int64), kh, kw, op.options["stride"], pads, 0
                         ).sum(axis=(3, 4))
            check_int32("pool sum", s)
            y = np.where(s > 0, (s + n // 2) // n, -((-s + n // 2) // n))
        return np.clip(y, lo, hi).astype(np.int64)
    if op.op == "ADD":
        return _add(model, op, vals, s_out, z_out, lo, hi)
    if op.op == "MEAN":      # over H and W, keep_dims false: TFLite's float32 QuantizedMeanOrSum
        from microdx.ops import gap
        if op.options.get("keep_dims") or (s_in, z_in) == (s_out, z_out):
            raise UnsupportedOpError(f"op '{op.name}' (MEAN): with keep_dims or its input's quantization TFLite runs "
                                     f"another kernel, not reproduced yet")
        return gap.tflite_mean(x.sum(axis=(1, 2)), x.shape[1] * x.shape[2], gap.mean_params((s_in, z_in),
                                                                                         (s_out, z_out)), z_out
                               ).astype(np.int64)
    if op.op == "SOFTMAX":   # gemmlowp's fixed point, as TFLite's reference kernel
        from microdx import gemmlowp
        return gemmlowp.softmax_rows(gemmlowp.exp_table(s_in, float(op.options.get("beta", 1.0))),
                                     x.reshape(len(x), -1)).reshape(x.shape).astype(np.int64)
    raise UnsupportedOpError(f"op '{op.name}' is {op.op}")


def _add(model: TfliteModel, op: Op, vals: dict, s_out: float, z_out: int, lo: int, hi: int) -> np.ndarray:
    """TFLite's int8 ADD (reference_integer_ops::Add): microdx.ops.add's arithmetic, with the tensors' own
    quantization."""
    from microdx.ops import add

    t = model.tensors
    qa, qb = ((float(t[i].scale[0]), int(t[i].zero[0])) for i in op.inputs[:2])
    a, b = (vals[i] for i in op.inputs[:2])
    return add.tflite_add(a, b, add.params(qa, qb, (s_out, z_out)), qa[1], qb[1], z_out, lo, hi)
