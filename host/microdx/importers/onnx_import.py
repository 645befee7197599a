"""ONNX importer: walks the graph from its input to its declared output and emits microdx's op list.

Only the nodes the chosen output depends on are read. Nodes whose inputs are all constant are folded with
onnx's own reference evaluator (Constant, Identity on a weight, Cast, Reshape/Transpose of a weight, ...).
Every other node must continue the single data chain; one function per ONNX op turns it into microdx ops
(dense, affine, relu, softmax), as tinygrad's onnx.py does; on (N, C, H, W) inputs the CNN converters of onnx_cnn
(Conv, pools, BatchNormalization folded into the conv, Clip as ReLU6, Flatten in CHW order) take over. An Add of the
chain and an earlier layer's output is a residual connection (kind add; the device keeps a skip buffer). Elementwise affines (input normalisation,
BatchNormalization, Mul/Add/Sub/Div by constants) are folded into dense layers later by the clean pass.

scikit-learn's classifier tail (ArgMax -> ArrayFeatureExtractor -> Reshape -> Cast for the label, ZipMap for the
probabilities) is recognised and dropped; its classes become the blob's labels.
All unsupported nodes are reported at once, each with its name, op and the nearest supported alternative.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from microdx.errors import ModelFileError, UnsupportedOpError
from microdx.importers import onnx_cnn
from microdx.ir import Graph, canonicalize, output_layer

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16}

# nearest supported alternative, for the error message
ALTERNATIVES = {
    "Sigmoid": "ReLU hidden layers and a Softmax (or no) output; scikit-learn binary classifiers end in Sigmoid: "
               "train with 3+ classes or use MLPRegressor",
    "Tanh": "ReLU (activation='relu' in scikit-learn, nn.ReLU in PyTorch)",
    "LeakyRelu": "ReLU", "Elu": "ReLU", "Selu": "ReLU", "Gelu": "ReLU", "HardSigmoid": "ReLU", "PRelu": "ReLU",
    "Clip": "ReLU (Clip(0, 6) is supported after a Conv)",
    "Conv": "a Conv on a (batch, C, H, W) input: a (batch, features) model has no spatial axes",
    "MaxPool": "a pool on a (batch, C, H, W) input", "AveragePool": "a pool on a (batch, C, H, W) input",
    "LSTM": "an MLP over stacked frames", "GRU": "an MLP over stacked frames",
    "ArgMax": "export the scores (scikit-learn: keep its default label + probability outputs)",
    "ZipMap": "skl2onnx options={'zipmap': False}, or keep both default outputs",
}
SUPPORTED = ("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Softmax", "LogSoftmax", "BatchNormalization",
             "Scaler", "Flatten", "Reshape", "Identity", "Dropout", "Cast", "Constant")
TAIL_OPS = ("Identity", "Cast", "ZipMap")            # probabilities -> output
LABEL_OPS = ("Identity", "Cast", "Reshape")         # ArrayFeatureExtractor -> label output


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _name(node, i) -> str:
    return node.name or f"{node.op_type}_{i}"


def _read(path) -> onnx.ModelProto:
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not an ONNX model file")
    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise
    except Exception as e:   # protobuf raises DecodeError and friends on a file that is not ONNX
        raise ModelFileError(f"{path} is not a readable ONNX model ({type(e).__name__}: {str(e)[:120]})") from None
    if not model.graph.node:
        raise ModelFileError(f"{path} is not a readable ONNX model (its graph has no nodes)")
    return model


# ---- per-op converters: (node name, constant inputs (None where the data flows), attrs, width) -> ops, width

def _feature_vector(node, c, width, what):
    """A constant that broadcasts per feature ((), (1,), (F,), (1, F)) as a float64 (width,) vector."""
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        return np.full(width, float(c.reshape(-1)[0]))
    if c.size == width and c.shape in ((width,), (1, width)):
        return c.reshape(width)
    raise UnsupportedOpError(f"node '{node}' ({what}): constant of shape {list(c.shape)} does not broadcast over "
                             f"the {width} features of a (batch, {width}) tensor")


def op_Gemm(node, ins, a, width):
    if ins[0] is not None:
        raise UnsupportedOpError(f"node '{node}' (Gemm): the constant is the first operand (A), so the result is "
                                 f"(features, batch), transposed; export as Gemm(data, weights) (torch: nn.Linear)")
    if a.get("transA", 0):
        raise UnsupportedOpError(f"node '{node}' (Gemm): transA=1 on the data tensor is not supported")
    b = ins[1]
    if b is None or b.ndim != 2:
        raise UnsupportedOpError(f"node '{node}' (Gemm): B must be a constant matrix (got a data tensor)")
    w = b if a.get("transB", 0) else b.T            # (out, in)
    w = float(a.get("alpha", 1.0)) * w.astype(np.float64)
    if w.shape[1] != width:
        raise UnsupportedOpError(f"node '{node}' (Gemm): weights take {w.shape[1]} inputs but receive {width}")
    bias = np.zeros(w.shape[0])
    if len(ins) > 2 and ins[2] is not None:
        bias = float(a.get("beta", 1.0)) * _feature_vector(node, ins[2], w.shape[0], "Gemm bias C")
    return [("dense", node, {"w": w, "b": bias})], w.shape[0]


def op_MatMul(node, ins, a, width):
    if ins[0] is not None or ins[1] is None or ins[1].ndim != 2:
        raise UnsupportedOpError(f"node '{node}' (MatMul): only data @ constant-matrix is supported "
                                 f"(a constant first operand gives a transposed result)")
    w = ins[1].T.astype(np.float64)
    if w.shape[1] != width:
        raise UnsupportedOpError(f"node '{node}' (MatMul): weights take {w.shape[1]} inputs but receive {width}")
    return [("dense", node, {"w": w, "b": np.zeros(w.shape[0])})], w.shape[0]


def _affine(node, scale, shift, width):
    return [("affine", node, {"scale": scale, "shift": shift})], width


def _binary(node, ins, width, what):
    """(constant as a feature vector, True if the data is the first operand)."""
    if ins[0] is None and ins[1] is None:
        raise UnsupportedOpError(f"node '{node}' ({what}) combines two data tensors (a residual or a branch); "
                                 f"only sequential models are supported")
    data_first = ins[0] is None
    return _feature_vector(node, ins[1] if data_first else ins[0], width, what), data_first


def op_Add(node, ins, a, width):
    c, _ = _binary(node, ins, width, "Add")
    return _affine(node, np.ones(width), c, width)


def op_Sub(node, ins, a, width):
    c, data_first = _binary(node, ins, width, "Sub")
    return _affine(node, np.ones(width), -c, width) if data_first else _affine(node, -np.ones(width), c, width)


def op_Mul(node, ins, a, width):
    c, _ = _binary(node, ins, width, "Mul")
    return _affine(node, c, np.zeros(width), width)


def op_Div(node, ins, a, width):
    c, data_first = _binary(node, ins, width, "Div")
    if not data_first:
        raise UnsupportedOpError(f"node '{node}' (Div): constant / data (a reciprocal) is not supported")
    if np.any(c == 0):
        raise UnsupportedOpError(f"node '{node}' (Div): divides by a constant that holds 0")
    return _affine(node, 1.0 / c, np.zeros(width), width)


def op_BatchNormalization(node, ins, a, width):
    if a.get("training_mode", 0):
        raise UnsupportedOpError(f"node '{node}' (BatchNormalization): training_mode=1; export the model in eval mode")
    if any(v is None for v in ins[1:5]):
        raise UnsupportedOpError(f"node '{node}' (BatchNormalization): scale, bias, mean and var must be constants")
    gamma, beta, mean, var = (_feature_vector(node, v, width, "BatchNormalization") for v in ins[1:5])
    s = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
    return _affine(node, s, beta - mean * s, width)


def op_Scaler(node, ins, a, width):   # ai.onnx.ml, what skl2onnx makes of StandardScaler: (x - offset) * scale
    offset = _feature_vector(node, np.asarray(a.get("offset", [0.0])), width, "Scaler offset")
    scale = _feature_vector(node, np.asarray(a.get("scale", [1.0])), width, "Scaler scale")
    return _affine(node, scale, -offset * scale, width)


def op_Relu(node, ins, a, width):
    return [("relu", node, {})], width


def _softmax(node, a, width, kind):
    axis = a.get("axis", -1)    # the default (1 before opset 13, -1 since) is the feature axis of a 2-D tensor
    if axis not in (-1, 1):
        raise UnsupportedOpError(f"node '{node}' ({kind}): axis {axis} is not the feature axis")
    return [("softmax" if kind == "Softmax" else "log_softmax", node, {})], width


def op_Softmax(node, ins, a, width):
    return _softmax(node, a, width, "Softmax")


def op_LogSoftmax(node, ins, a, width):
    return _softmax(node, a, width, "LogSoftmax")


def op_Flatten(node, ins, a, width):
    if a.get("axis", 1) != 1:
        raise UnsupportedOpError(f"node '{node}' (Flatten): axis {a['axis']} is not supported (use axis=1)")
    return [], width


def op_Reshape(node, ins, a, width):
    shape = ins[1]
    if shape is None:
        raise UnsupportedOpError(f"node '{node}' (Reshape): the target shape must be a constant")
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    # (batch, features) in any spelling: [-1, F], [0, F], [0, -1], [N or 1, -1] ...
    if len(shape) != 2 or shape[1] not in (width, -1) or shape == [-1, -1] or shape[0] < -1:
        raise UnsupportedOpError(f"node '{node}' (Reshape): to {shape} changes the (batch, {width}) layout; "
                                 f"only (batch, features) models are supported")
    return [], width


def op_Identity(node, ins, a, width):
    return [], width


op_Dropout = op_Identity    # inference: identity (its optional mask output is never consumed here)


def op_Cast(node, ins, a, width):
    if a.get("to") not in FLOAT_TYPES:
        raise UnsupportedOpError(f"node '{node}' (Cast): cast of the data to a non-float type "
                                 f"({onnx.TensorProto.DataType.Name(a.get('to', 0))}) is not supported")
    return [], width


CONVERTERS = {name[3:]: fn for name, fn in list(globals().items()) if name.startswith("op_")}


# ---- graph walking

def _producers(g) -> dict:
    return {out: node for node in g.node for out in node.output if out}


def _strip(name, producers, ops):
    """Follow `name` back through nodes of the given op types; returns (tensor, the nodes passed)."""
    passed = []
    while name in producers and producers[name].op_type in ops:
        node = producers[name]
        passed.append(node)
        name = node.input[0]
    return name, passed


def _labels_of(nodes, consts) -> list:
    for node in nodes:
        a = _attrs(node)
        for key in ("classlabels_int64s", "classlabels_strings"):
            if a.get(key):
                return [v.decode() if isinstance(v, bytes) else str(v) for v in a[key]]
        if node.op_type == "ArrayFeatureExtractor" and node.input[0] in consts:
            return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(consts[node.input[0]]).reshape(-1)]
    return []


def select_output(g, consts) -> tuple[str, list]:
    """(the tensor to convert, class labels) from the graph's declared outputs.

    One output: itself, less a trailing ZipMap/Identity/Cast. Two outputs that are scikit-learn's classifier tail
    (label = classes[ArgMax(probabilities)], probabilities optionally through ZipMap): the probabilities, with the
    classes as labels. Anything else: an error naming the outputs.
    """
    producers = _producers(g)
    outs = [o.name for o in g.output]
    if len(outs) == 1:
        base, passed = _strip(outs[0], producers, TAIL_OPS)
        return base, _labels_of(passed, consts)
    if len(outs) == 2:
        for label_out, prob_out in (outs, outs[::-1]):
            base, passed = _strip(prob_out, producers, TAIL_OPS)
            idx, lpassed = _strip(label_out, producers, LABEL_OPS)
            afe = producers.get(idx)
            if afe is None or afe.op_type != "ArrayFeatureExtractor" or afe.input[0] not in consts:
                continue
            argmax = producers.get(afe.input[1])
            if argmax is None or argmax.op_type != "ArgMax":
                continue
            if _strip(argmax.input[0], producers, TAIL_OPS)[0] == base:
                return base, _labels_of([afe], consts) or _labels_of(passed, consts)
    raise UnsupportedOpError(f"the graph declares {len(outs)} outputs ({', '.join(repr(o) for o in outs)}); microdx "
                             f"converts a model with one output: re-export with only the output you need")


def _needed(g, output: str) -> list:
    """The nodes `output` depends on, in graph order."""
    producers = _producers(g)
    seen, stack = set(), [output]
    while stack:
        node = producers.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(i for i in node.input if i)
    return [n for n in g.node if id(n) in seen]


def _fold(node, consts, opsets, name):
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    model = onnx.helper.make_model(
        onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_tensor_value_info(o, 0, None)
                                                    for o in node.output if o],
                               [numpy_helper.from_array(np.asarray(consts[i]), i) for i in dict.fromkeys(node.input) if i]),
        opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in opsets.items()])
    try:
        values = ReferenceEvaluator(model).run(None, {})
    except Exception as e:
        raise UnsupportedOpError(f"node '{name}' ({node.op_type}) on constants could not be folded: "
                                 f"{type(e).__name__}: {str(e)[:120]}") from None
    return dict(zip([o for o in node.output if o], values))


def load(path) -> Graph:
    """Float Graph from an ONNX file (see the module docstring for what is supported).

    Raises ModelFileError for a file that is not ONNX and UnsupportedOpError listing every node it cannot convert.
    """
    model = _read(path)
    g = model.graph
    opsets = {o.domain or "": o.version for o in model.opset_import}
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedOpError(f"{path}: the graph has {len(inputs)} data inputs "
                                 f"({', '.join(i.name for i in inputs)}); microdx converts models with one input")
    inp = inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    if len(dims) == 4 and all(dims[1:]):          # a CNN: (N, C, H, W) in ONNX, (H, W, C) in microdx
        width = (dims[2], dims[3], dims[1])
    elif len(dims) == 2 and dims[1]:
        width = dims[1]
    else:
        raise UnsupportedOpError(f"{path}: input '{inp.name}' has shape {dims}; expected (batch, features) or "
                                 f"(batch, C, H, W)")
    input_shape = width if isinstance(width, tuple) else (width,)
    output, labels = select_output(g, consts)
    tail, ops, problems, chw = inp.name, [], [], None
    made = {inp.name: None}   # activation -> the layer whose output it is (None: the input), for residual Adds
    for i, node in enumerate(_needed(g, output)):
        name = _name(node, i)
        data_in = [x for x in node.input if x and x not in consts]
        if not data_in:                                  # constants only: fold
            consts.update(_fold(node, consts, opsets, name))
            continue
        table = onnx_cnn.CONVERTERS if isinstance(width, tuple) else CONVERTERS   # (H, W, C) maps or vectors
        conv = table.get(node.op_type) if node.domain in ("", "ai.onnx", "ai.onnx.ml") else None
        if node.op_type == "Add" and len(set(data_in)) == 2 and tail in data_in:   # a residual connection
            other = data_in[0] if data_in[1] == tail else data_in[1]
            if other in made:
                ops.append(("add", name, {"skip": made[other]}))
            else:
                problems.append(f"node '{name}' (Add) adds '{other}', which microdx does not keep: it is not the "
                                f"output of a layer (a ReLU or BatchNormalization fused into that layer changed it)")
        elif conv is None:
            hint = ALTERNATIVES.get(node.op_type, f"one of {', '.join(SUPPORTED)}")
            problems.append(f"node '{name}' uses op '{node.op_type}' (instead: {hint})")
        elif len(set(data_in)) > 1 or data_in[0] != tail:
            problems.append(f"node '{name}' ({node.op_type}) takes {', '.join(data_in)}, not the single chain's "
                            f"'{tail}': branches and residual connections are not supported yet")
        else:
            ins = [None if x in data_in else consts.get(x) if x else None for x in node.input]
            try:
                new, width = conv(name, ins, _attrs(node), width)
                if any(op[0] in ("relu", "fold_bn") for op in new):   # fused into the last layer: it changes
                    last = output_layer(ops)                           # that layer's output, so its earlier
                    made = {k: v for k, v in made.items() if v != last or v is None}   # tensors are gone
                for op in new:
                    if op[0] == "fold_bn":
                        onnx_cnn.fold_bn(ops, op[1], op[2]["scale"], op[2]["shift"])
                    elif op[0] == "flatten":     # ONNX flattens (C, H, W): the next dense layer reads HWC
                        chw = op[2]["chw"]
                        ops.append(("flatten", op[1], {}))
                    else:
                        if op[0] == "dense" and chw is not None:
                            op = (op[0], op[1], {**op[2], "w": onnx_cnn.hwc_columns(op[2]["w"], chw)})
                            chw = None
                        ops.append(op)
            except UnsupportedOpError as e:
                problems.append(str(e))
        tail = node.output[0]
        made[tail] = output_layer(ops)
    if problems:
        raise UnsupportedOpError(f"{Path(path).name}: {len(problems)} node(s) cannot be converted: "
                                 + "; ".join(problems))
    if not labels:
        labels = next((p.value.split(",") for p in model.metadata_props if p.key == "labels"), [])
    return canonicalize(g.name or Path(path).stem, input_shape, ops, labels)
