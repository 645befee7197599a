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
    kind: str                                   # "dense"; "affine" only before the clean pass folds it
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
    post: str | None = None                     # "softmax" | "log_softmax": applied by the host, not streamed
    input_q: tuple[float, int] | None = None    # (scale, zero point) of the int8 input
    output_q: tuple[float, int] | None = None   # (scale, zero point) of the int8 output
    recipe: str = ""                            # optimizer recipe that made it (recorded in the blob header)

    @property
    def dtype(self) -> str:
        return self.layers[0].dtype if self.layers else "f32"

    def copy(self, **changes) -> "Graph":
        return replace(self, **changes)


def layer_shapes(graph: Graph) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every layer."""
    shapes, cur = [], tuple(graph.input_shape)
    for layer in graph.layers:
        if layer.kind in ("dense", "dense16"):
            out = (int(layer.tensors["w"].shape[0]),)
        elif layer.kind in ("sparse", "codebook"):
            out = (int(layer.tensors["b"].shape[0]),)
        elif layer.kind == "affine":          # elementwise: keeps the shape
            out = cur
        else:
            raise UnsupportedOpError(f"layer '{layer.name}': kind '{layer.kind}' has no shape rule")
        shapes.append((cur, out))
        cur = out
    return shapes


def _finite(node: str, name: str, arr: np.ndarray) -> np.ndarray:
    """`arr` as float32, or UnsupportedOpError naming the node and tensor if it holds NaN/Inf (or overflows)."""
    a = np.asarray(arr)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise UnsupportedOpError(f"node '{node}': tensor '{name}' has dtype {a.dtype}; weights must be numbers")
    with np.errstate(over="ignore"):
        f = a.astype(np.float32)
    bad = ~np.isfinite(f)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise UnsupportedOpError(f"node '{node}': tensor '{name}' holds {a[where]} at index {list(where)} "
                                 f"(NaN, Inf or beyond float32); fix the trained weights")
    return f


# importer op -> what it becomes: an activation fused into the layer before it, or the host-side output post-op
_ACTS = {"relu": "relu"}
_POSTS = {"softmax": "softmax", "log_softmax": "log_softmax"}


def canonicalize(name, input_shape, ops, labels=()) -> Graph:
    """Build a Graph from an importer's op list, fusing what the runtime fuses.

    `ops` is a list of (op, node name, tensors) with op in {"dense", "affine", "relu", "softmax",
    "log_softmax", "flatten"}: dense has w (out, in) and b (out,); affine is an elementwise y = x * scale + shift
    (input normalisation, BatchNormalization, Mul/Add by constants) that the clean pass folds into a dense layer.
    ReLU fuses into the layer before it, Flatten of a vector is a no-op, a final (log-)softmax becomes
    `graph.post` (the arg-max is the same without it). Anything else raises UnsupportedOpError naming the node.
    """
    layers: list[Layer] = []
    post = None
    width = int(input_shape[0]) if len(input_shape) == 1 else None
    for op, node, tensors in ops:
        if post is not None:
            raise UnsupportedOpError(f"node '{node}' ({op}) follows the {post}; only a final softmax is supported")
        need = {"dense": ("w",), "affine": ("scale", "shift")}.get(op, ())
        missing = [k for k in need if tensors.get(k) is None]
        if missing:
            raise UnsupportedOpError(f"node '{node}' ({op}): tensor(s) {', '.join(missing)} missing")
        if op == "dense":
            w = _finite(node, "w", tensors["w"])
            b = _finite(node, "b", tensors["b"]) if tensors.get("b") is not None else np.zeros(w.shape[0], np.float32)
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise UnsupportedOpError(f"node '{node}' (dense): weight {w.shape} / bias {b.shape} do not fit")
            if width is not None and w.shape[1] != width:
                raise UnsupportedOpError(f"node '{node}' (dense): takes {w.shape[1]} inputs but receives {width}")
            layers.append(Layer("dense", node, "f32", {"w": w, "b": b}, {"act": None}))
            width = w.shape[0]
        elif op == "affine":
            s, t = _finite(node, "scale", tensors["scale"]), _finite(node, "shift", tensors["shift"])
            if s.shape != (width,) or t.shape != (width,):
                raise UnsupportedOpError(f"node '{node}': per-feature scale {s.shape} / shift {t.shape} do not fit "
                                         f"{width} features")
            layers.append(Layer("affine", node, "f32", {"scale": s, "shift": t}, {"act": None}))
        elif op in _ACTS:
            if not layers or layers[-1].attrs.get("act") is not None:
                raise UnsupportedOpError(f"node '{node}' ({op}) must directly follow a dense layer "
                                         f"(the runtime fuses it into the layer before it)")
            layers[-1].attrs["act"] = _ACTS[op]
        elif op == "flatten":
            if layers or len(input_shape) != 1:
                raise UnsupportedOpError(f"node '{node}' (Flatten) is only supported on a vector input")
        elif op in _POSTS:
            post = _POSTS[op]
        else:
            raise UnsupportedOpError(f"node '{node}' uses op '{op}', which microdx cannot convert yet")
    if not any(layer.kind == "dense" for layer in layers):
        raise UnsupportedOpError("the model has no dense layer")
    return Graph(name, tuple(int(d) for d in input_shape), layers, [str(x) for x in labels], post)
