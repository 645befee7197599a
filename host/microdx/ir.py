"""The intermediate representation: a sequential list of layers with named numpy tensors.

Importers produce it, optimizers map it to a new one, the packer writes it, the blob reader reads it back.
A float model has layers of dtype "f32"; `quantize` turns them into "i8" layers carrying device-ready tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from microdx.errors import UnsupportedOpError


@dataclass
class Layer:
    kind: str                                   # "dense" (more kinds come with later kernels)
    name: str
    dtype: str = "f32"                          # arithmetic the layer runs in: "f32" or "i8"
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)   # e.g. act="relu"; i8 layers: zero, scale


@dataclass
class Graph:
    name: str
    input_shape: tuple[int, ...]
    layers: list[Layer]
    labels: list[str] = field(default_factory=list)
    post: str | None = None                     # "softmax": applied by the host to the logits, not streamed
    input_q: tuple[float, int] | None = None    # (scale, zero point) of the int8 input
    output_q: tuple[float, int] | None = None   # (scale, zero point) of the int8 output

    @property
    def dtype(self) -> str:
        return self.layers[0].dtype if self.layers else "f32"

    def copy(self, **changes) -> "Graph":
        return replace(self, **changes)


def layer_shapes(graph: Graph) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every layer."""
    shapes, cur = [], tuple(graph.input_shape)
    for layer in graph.layers:
        if layer.kind != "dense":
            raise UnsupportedOpError(f"layer '{layer.name}': kind '{layer.kind}' has no shape rule")
        out = (int(layer.tensors["w"].shape[0]),)
        shapes.append((cur, out))
        cur = out
    return shapes


def canonicalize(name, input_shape, ops, labels=()) -> Graph:
    """Build a Graph from an importer's op list, fusing what the runtime fuses.

    `ops` is a list of (op, node name, tensors) with op in {"dense", "relu", "softmax", "flatten"}:
    ReLU fuses into the dense layer before it, Flatten of a vector is a no-op, a final Softmax becomes
    `graph.post`. Anything else raises UnsupportedOpError naming the node.
    """
    layers: list[Layer] = []
    post = None
    for i, (op, node, tensors) in enumerate(ops):
        if post is not None:
            raise UnsupportedOpError(f"node '{node}' ({op}) follows the Softmax; only a final Softmax is supported")
        if op == "dense":
            w = np.asarray(tensors["w"], dtype=np.float32)
            b = np.asarray(tensors.get("b", np.zeros(w.shape[0])), dtype=np.float32)
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise UnsupportedOpError(f"node '{node}' (dense): weight {w.shape} / bias {b.shape} do not fit")
            layers.append(Layer("dense", node, "f32", {"w": w, "b": b}, {"act": None}))
        elif op == "relu":
            if not layers or layers[-1].attrs.get("act") is not None:
                raise UnsupportedOpError(f"node '{node}' (Relu) must directly follow a dense layer")
            layers[-1].attrs["act"] = "relu"
        elif op == "flatten":
            if layers or len(input_shape) != 1:
                raise UnsupportedOpError(f"node '{node}' (Flatten) is only supported on a vector input")
        elif op == "softmax":
            post = "softmax"
        else:
            raise UnsupportedOpError(f"node '{node}' uses op '{op}', which microdx cannot convert yet")
    if not layers:
        raise UnsupportedOpError("the model has no dense layer")
    graph = Graph(name, tuple(int(d) for d in input_shape), layers, [str(x) for x in labels], post)
    prev = graph.input_shape
    for layer, (s_in, s_out) in zip(graph.layers, layer_shapes(graph)):
        w = layer.tensors["w"]
        if (w.shape[1],) != prev:
            raise UnsupportedOpError(f"layer '{layer.name}': takes {w.shape[1]} inputs but receives {prev}")
        prev = s_out
    return graph
