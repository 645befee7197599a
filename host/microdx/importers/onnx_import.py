"""ONNX importer: a sequential chain of Gemm | MatMul(+Add) | Relu | Softmax | Flatten (| Identity, Dropout)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from microdx.errors import UnsupportedOpError
from microdx.ir import Graph, canonicalize

SUPPORTED = ("Gemm", "MatMul", "Add", "Relu", "Softmax", "Flatten", "Identity", "Dropout")


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load(path) -> Graph:
    """Float Graph from an ONNX file. Unsupported ops raise UnsupportedOpError naming the node and op."""
    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedOpError(f"{path}: expected one graph input, found {len(inputs)}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 2 or dims[1] is None:
        raise UnsupportedOpError(f"{path}: input '{inputs[0].name}' has shape {dims}; expected (batch, features)")
    cur = inputs[0].name
    ops = []
    for node in g.node:
        name = node.name or f"{node.op_type}_{len(ops)}"
        if node.op_type not in SUPPORTED:
            raise UnsupportedOpError(f"node '{name}' uses op '{node.op_type}', which microdx cannot convert yet "
                                     f"(supported: {', '.join(SUPPORTED)})")
        data = [i for i in node.input if i and i not in inits]
        if data != [cur]:
            raise UnsupportedOpError(f"node '{name}' ({node.op_type}) does not continue a single chain "
                                     f"(inputs {list(node.input)}); only sequential models are supported")
        a = _attrs(node)
        consts = [inits[i] for i in node.input if i in inits]
        if node.op_type == "Gemm":
            if a.get("transA", 0):
                raise UnsupportedOpError(f"node '{name}' (Gemm): transA=1 is not supported")
            w = consts[0] if a.get("transB", 0) else consts[0].T
            b = consts[1] if len(consts) > 1 else np.zeros(w.shape[0])
            ops.append(("dense", name, {"w": a.get("alpha", 1.0) * w, "b": a.get("beta", 1.0) * np.broadcast_to(b, w.shape[:1])}))
        elif node.op_type == "MatMul":
            if len(consts) != 1 or consts[0].ndim != 2 or node.input[0] != cur:
                raise UnsupportedOpError(f"node '{name}' (MatMul): only x @ constant-matrix is supported")
            ops.append(("dense", name, {"w": consts[0].T, "b": np.zeros(consts[0].shape[1])}))
        elif node.op_type == "Add":
            if not ops or ops[-1][0] != "dense" or len(consts) != 1 or ops[-1][2].get("bias_added"):
                raise UnsupportedOpError(f"node '{name}' (Add): only a constant bias after MatMul/Gemm is supported")
            t = ops[-1][2]
            t["b"] = t["b"] + np.broadcast_to(consts[0].reshape(-1), t["b"].shape)
            t["bias_added"] = True
        elif node.op_type == "Softmax":
            if a.get("axis", -1) not in (-1, 1):
                raise UnsupportedOpError(f"node '{name}' (Softmax): axis {a['axis']} is not the feature axis")
            ops.append(("softmax", name, {}))
        elif node.op_type == "Flatten":
            if a.get("axis", 1) != 1:
                raise UnsupportedOpError(f"node '{name}' (Flatten): axis {a['axis']} is not supported")
            ops.append(("flatten", name, {}))
        elif node.op_type == "Relu":
            ops.append(("relu", name, {}))
        cur = node.output[0]
    for op in ops:
        op[2].pop("bias_added", None)
    labels = next((p.value.split(",") for p in model.metadata_props if p.key == "labels"), [])
    return canonicalize(g.name or Path(path).stem, (dims[1],), ops, labels)
