"""The intermediate representation: a sequential list of layers with named numpy tensors.

Importers produce it, optimizers map it to a new one, the packer writes it, the blob reader reads it back.
A float model has layers of dtype "f32"; `quantize` turns them into "i8" layers carrying device-ready tensors.
"""
from __future__ import annotations

import math
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
    frontend: dict | None = None                # the audio front-end the model takes its input from (blob header:
                                                # microdx.features.fixed_mfcc.spec); None: the caller gives features

    @property
    def input_size(self) -> int:
        """Input values per inference (features; H * W * C for a conv model's (H, W, C) input)."""
        return math.prod(self.input_shape)

    @property
    def dtype(self) -> str:
        return self.layers[0].dtype if self.layers else "f32"

    def copy(self, **changes) -> "Graph":
        return replace(self, **changes)


def layer_shapes(graph: Graph) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input shape, output shape) of every layer."""
    from microdx.ops import op

    shapes, cur = [], tuple(graph.input_shape)
    for i, layer in enumerate(graph.layers):
        view = layer.attrs.get("in_shape")   # a reshape is free: a layer may view its input in its own shape
        if view is not None and tuple(view) != cur:
            if math.prod(view) != math.prod(cur):
                raise UnsupportedOpError(f"layer '{layer.name}': takes {list(view)} but receives {list(cur)}")
            cur = tuple(int(d) for d in view)
        if layer.kind in ("dense", "dense16"):      # a dense layer after a conv takes its output flattened (HWC)
            if math.prod(cur) != layer.tensors["w"].shape[1]:
                raise UnsupportedOpError(f"layer '{layer.name}': takes {layer.tensors['w'].shape[1]} inputs but "
                                         f"receives {list(cur)}")
            out = (int(layer.tensors["w"].shape[0]),)
        elif hasattr(op(layer.kind), "output_shape"):   # the windowed kinds and global pooling
            out = op(layer.kind).output_shape(layer, cur)
        elif layer.kind in ("sparse", "codebook"):
            out = (int(layer.tensors["b"].shape[0]),)
        elif layer.kind == "affine":          # elementwise: keeps the shape
            out = cur
        elif layer.kind == "add":             # elementwise with an earlier layer's output (or the input)
            k = skip_index(graph.layers, i)
            skip = tuple(graph.input_shape) if k < 0 else shapes[k][1]
            if math.prod(skip) != math.prod(cur):
                raise UnsupportedOpError(f"layer '{layer.name}': adds {list(skip)} to {list(cur)}")
            out = cur
        else:
            raise UnsupportedOpError(f"layer '{layer.name}': kind '{layer.kind}' has no shape rule")
        shapes.append((cur, out))
        cur = out
    return shapes


# canonicalize ops that make no layer of their own: ReLU fuses into the layer before it, flatten and reshape are
# free views, a final (log-)softmax is the host's post-op
LAYERLESS_OPS = ("relu", "flatten", "reshape", "softmax", "log_softmax")


def output_layer(ops) -> str | None:
    """The name of the layer the output of a canonicalize op list comes from (None: the model input): what an
    importer records as a residual add's skip for each activation."""
    return next((name for kind, name, _ in reversed(ops) if kind not in LAYERLESS_OPS), None)


def skip_index(layers: list, i: int) -> int:
    """The index of the layer whose output add layer i adds (attrs skip: its name; None for the model input: -1),
    or UnsupportedOpError if no earlier layer, or more than one, has that name (say, an optimizer replaced it)."""
    name = layers[i].attrs["skip"]
    if name is None:
        return -1
    found = [k for k in range(i) if layers[k].name == name]
    if len(found) != 1:
        raise UnsupportedOpError(f"layer '{layers[i].name}' (add) adds the output of layer '{name}', which "
                                 + ("is not before it (did a recipe step replace it?)" if not found else
                                    f"names {len(found)} earlier layers"))
    return found[0]


def skip_sources(graph: Graph) -> set[int]:
    """The indices (-1: the input) whose outputs the graph's add layers take."""
    return {skip_index(graph.layers, i) for i, layer in enumerate(graph.layers) if layer.kind == "add"}


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


def _ints(node, name, value, count, lo, default):
    """A small int attribute given as an array (stride, pad), checked: `count` values, each >= lo."""
    if value is None:
        return tuple(default)
    v = np.asarray(value).reshape(-1)
    if v.size != count or not np.issubdtype(v.dtype, np.integer) or (v < lo).any():
        raise UnsupportedOpError(f"node '{node}' (conv2d): {name} must be {count} integers >= {lo}, got "
                                 f"{v.tolist()}")
    return tuple(int(a) for a in v)


def _conv2d(node, tensors, shape, depthwise=False) -> Layer:
    """A float conv2d (or, `depthwise`, dwconv2d: weights (C, kh, kw)) layer on an (H, W, C) input `shape`, or
    UnsupportedOpError saying what does not fit."""
    from microdx.ops import conv2d

    kind = "dwconv2d" if depthwise else "conv2d"
    w = _finite(node, "w", tensors["w"])
    b = _finite(node, "b", tensors["b"]) if tensors.get("b") is not None else np.zeros(w.shape[0], np.float32)
    if w.ndim != (3 if depthwise else 4) or b.shape != (w.shape[0],):
        raise UnsupportedOpError(f"node '{node}' ({kind}): weight {w.shape} / bias {b.shape} do not fit "
                                 f"(weights are " + ("(C, kh, kw))" if depthwise else "(out, kh, kw, in))"))
    w_in = w.shape[0] if depthwise else w.shape[3]      # a depthwise channel reads its own input channel
    if len(shape) != 3 or shape[2] != w_in:
        raise UnsupportedOpError(f"node '{node}' ({kind}): takes (H, W, {w_in}) inputs but receives "
                                 f"{list(shape)}" + (" (a conv model's file must give its input_shape (H, W, C))"
                                                     if not shape else ""))
    stride = _ints(node, "stride", tensors.get("stride"), 2, 1, (1, 1))
    pad = _ints(node, "pad", tensors.get("pad"), 4, 0, (0, 0, 0, 0))
    kernel = (int(w.shape[1]), int(w.shape[2]))
    if max(pad[:2]) >= kernel[0] or max(pad[2:]) >= kernel[1]:
        raise UnsupportedOpError(f"node '{node}' ({kind}): padding {list(pad)} must be smaller than the kernel "
                                 f"{list(kernel)} (a window of padding only)")
    if conv2d.out_shape(shape, kernel, stride, pad, w.shape[0]) is None:
        raise UnsupportedOpError(f"node '{node}' ({kind}): kernel {list(kernel)} does not fit the padded input "
                                 f"{list(shape)}")
    return Layer(kind, node, "f32", {"w": w, "b": b},
                 {"act": None, "in_shape": tuple(shape), "kernel": kernel, "stride": stride, "pad": pad})


def _pool(node, kind, tensors, shape) -> Layer:
    """A pooling layer on an (H, W, C) input: tensors kernel (kh, kw), stride (default the kernel), pad (default 0)
    as int arrays, or UnsupportedOpError saying what does not fit."""
    from microdx.ops import conv2d

    if len(shape) != 3:
        raise UnsupportedOpError(f"node '{node}' ({kind}) needs an (H, W, C) input, not {list(shape)}")
    kernel = _ints(node, "kernel", tensors.get("kernel"), 2, 1, None) if tensors.get("kernel") is not None else None
    if kernel is None:
        raise UnsupportedOpError(f"node '{node}' ({kind}): the kernel size (kh, kw) is missing")
    stride = _ints(node, "stride", tensors.get("stride"), 2, 1, kernel)
    pad = _ints(node, "pad", tensors.get("pad"), 4, 0, (0, 0, 0, 0))
    if max(pad[:2]) >= kernel[0] or max(pad[2:]) >= kernel[1]:
        raise UnsupportedOpError(f"node '{node}' ({kind}): padding {list(pad)} must be smaller than the kernel "
                                 f"{list(kernel)}")
    if conv2d.out_shape(shape, kernel, stride, pad, shape[2]) is None:
        raise UnsupportedOpError(f"node '{node}' ({kind}): kernel {list(kernel)} does not fit the input {list(shape)}")
    return Layer(kind, node, "f32", {}, {"act": None, "in_shape": tuple(shape), "kernel": kernel, "stride": stride,
                                         "pad": pad})


# importer op -> what it becomes: an activation fused into the layer before it, or the host-side output post-op
_ACTS = {"relu": "relu"}
ACT_FUNCS = ("relu6", "tanh", "sigmoid")   # elementwise layers of their own (kind "act", microdx.ops.act)


def _as_2d(node, op, tensors) -> dict:
    """A 1-D op's tensors as its 2-D kind takes them over a (1, L, C) view: conv1d weights (out, k, in) become
    (out, 1, k, in); kernel k, stride s and pad (left, right) become (1, k), (1, s) and (0, 0, left, right)."""
    t = dict(tensors)
    if op == "conv1d" and t.get("w") is not None:
        w = np.asarray(t["w"])
        if w.ndim != 3:
            raise UnsupportedOpError(f"node '{node}' (conv1d): weights must be (out, k, in), not {list(w.shape)}")
        t["w"] = w[:, None, :, :]
    for key, fill in (("kernel", 1), ("stride", 1)):
        if t.get(key) is not None:
            t[key] = np.concatenate([[fill], np.asarray(t[key]).reshape(-1)]).astype(np.int64)
    if t.get("pad") is not None:
        t["pad"] = np.concatenate([[0, 0], np.asarray(t["pad"]).reshape(-1)]).astype(np.int64)
    return t
_POSTS = {"softmax": "softmax", "log_softmax": "log_softmax"}


def canonicalize(name, input_shape, ops, labels=()) -> Graph:
    """Build a Graph from an importer's op list, fusing what the runtime fuses.

    `ops` is a list of (op, node name, tensors) with op in {"dense", "conv2d", "dwconv2d", "conv1d", "maxpool2d",
    "avgpool2d", "maxpool1d", "avgpool1d", "gap", "affine", "add", "relu", "relu6", "tanh", "sigmoid", "softmax",
    "log_softmax", "device_softmax", "flatten", "reshape"}: dense has w (out, in) and b (out,); conv2d (on an (H, W, C) input) has w
    (out, kh, kw, in), b (out,), and optionally stride (sh, sw) and pad (top, bottom, left, right) as int arrays
    (default 1, 1 and 0, 0, 0, 0); affine is an elementwise y = x * scale + shift (input normalisation,
    BatchNormalization, Mul/Add by constants) that the clean pass folds into a dense layer. ReLU fuses into the
    layer before it, Flatten makes an (H, W, C) activation a vector in row-major HWC order (of a vector it is a
    no-op), reshape (tensor shape) lets the next layer view the same row-major buffer in a new shape (free, no
    copy), 1-D convs and pools (weights (out, k, in); kernel, stride, pad (left, right)) run as their 2-D kinds
    over a (1, L, C) view, relu6 / tanh / sigmoid are layers of kind "act", device_softmax is a softmax computed on
    the device (kind "softmax"), add (tensors: skip, the name of an earlier layer or None for the input) adds that
    layer's output to the chain (a residual connection), a final (log-)softmax becomes `graph.post` (the arg-max is
    the same without it).
    Anything else raises
    UnsupportedOpError naming the node.
    """
    layers: list[Layer] = []
    post = None
    shape = tuple(int(d) for d in input_shape)
    width = shape[0] if len(shape) == 1 else None
    for op, node, tensors in ops:
        if post is not None:
            raise UnsupportedOpError(f"node '{node}' ({op}) follows the {post}; only a final softmax is supported")
        need = {"dense": ("w",), "conv2d": ("w",), "dwconv2d": ("w",), "affine": ("scale", "shift")}.get(op, ())
        missing = [k for k in need if tensors.get(k) is None]
        if missing:
            raise UnsupportedOpError(f"node '{node}' ({op}): tensor(s) {', '.join(missing)} missing")
        if op == "dense":
            w = _finite(node, "w", tensors["w"])
            b = _finite(node, "b", tensors["b"]) if tensors.get("b") is not None else np.zeros(w.shape[0], np.float32)
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise UnsupportedOpError(f"node '{node}' (dense): weight {w.shape} / bias {b.shape} do not fit")
            if len(shape) > 1:
                raise UnsupportedOpError(f"node '{node}' (dense) receives an activation of shape {list(shape)}; "
                                         f"add a Flatten before it (row-major HWC order)")
            if width is not None and w.shape[1] != width:
                raise UnsupportedOpError(f"node '{node}' (dense): takes {w.shape[1]} inputs but receives {width}")
            layers.append(Layer("dense", node, "f32", {"w": w, "b": b}, {"act": None}))
            width = w.shape[0]
            shape = (width,)
        elif op in ("conv2d", "dwconv2d"):
            layers.append(_conv2d(node, tensors, shape, depthwise=op == "dwconv2d"))
            shape, width = layer_shapes(Graph("", shape, layers[-1:]))[0][1], None
        elif op in ("avgpool2d", "maxpool2d"):
            layers.append(_pool(node, op, tensors, shape))
            shape, width = layer_shapes(Graph("", shape, layers[-1:]))[0][1], None
        elif op == "gap":
            if len(shape) != 3:
                raise UnsupportedOpError(f"node '{node}' (global average pool) needs an (H, W, C) input, not "
                                         f"{list(shape)}")
            layers.append(Layer("gap", node, "f32", {}, {"act": None, "in_shape": tuple(shape)}))
            shape, width = (shape[2],), shape[2]
        elif op == "affine":
            s, t = _finite(node, "scale", tensors["scale"]), _finite(node, "shift", tensors["shift"])
            if s.shape != (width,) or t.shape != (width,):
                raise UnsupportedOpError(f"node '{node}': per-feature scale {s.shape} / shift {t.shape} do not fit "
                                         f"{width} features")
            layers.append(Layer("affine", node, "f32", {"scale": s, "shift": t}, {"act": None}))
        elif op in _ACTS:
            if not layers or layers[-1].attrs.get("act") is not None or layers[-1].kind in ("act", "softmax"):
                raise UnsupportedOpError(f"node '{node}' ({op}) must directly follow a dense layer "
                                         f"(the runtime fuses it into the layer before it)")
            layers[-1].attrs["act"] = _ACTS[op]
        elif op == "flatten":
            shape = (math.prod(shape),)
            width = shape[0]
        elif op == "reshape":   # free: the next layer views the row-major buffer in the new shape
            new = _ints(node, "shape", tensors.get("shape"), np.size(tensors.get("shape")), 1, ())
            if not new or len(new) > 4 or math.prod(new) != math.prod(shape):
                raise UnsupportedOpError(f"node '{node}' (reshape): {list(shape)} cannot become {list(new)} "
                                         f"(1 to 4 dims, the same number of values)")
            shape, width = new, (new[0] if len(new) == 1 else None)
        elif op in ("conv1d", "maxpool1d", "avgpool1d"):   # as their 2-D kinds over a (1, L, C) view
            if len(shape) != 2 and not (len(shape) == 3 and shape[0] == 1):
                raise UnsupportedOpError(f"node '{node}' ({op}) needs an (L, C) input, not {list(shape)}")
            shape = (1, *shape[-2:])
            t = _as_2d(node, op, tensors)
            if op == "conv1d":
                layers.append(_conv2d(node, t, shape))
            else:
                layers.append(_pool(node, op.replace("1d", "2d"), t, shape))
            shape, width = layer_shapes(Graph("", shape, layers[-1:]))[0][1], None
        elif op in ACT_FUNCS:
            layers.append(Layer("act", node, "f32", {}, {"act": None, "func": op}))
        elif op == "add":   # residual: the chain plus the output of the earlier layer named skip (None: the input)
            skip = tensors.get("skip")
            if skip is not None and skip not in [layer.name for layer in layers]:
                raise UnsupportedOpError(f"node '{node}' (add) adds the output of '{skip}', which is not an earlier "
                                         f"layer")
            layers.append(Layer("add", node, "f32", {}, {"act": None, "skip": skip}))
        elif op == "device_softmax":
            if len(shape) != 1:
                raise UnsupportedOpError(f"node '{node}' (softmax) needs a vector of logits, not {list(shape)}")
            layers.append(Layer("softmax", node, "f32", {}, {"act": None}))
        elif op in _POSTS:
            post = _POSTS[op]
        else:
            raise UnsupportedOpError(f"node '{node}' uses op '{op}', which microdx cannot convert yet")
    if not any(layer.kind in ("dense", "conv2d", "dwconv2d") for layer in layers):
        raise UnsupportedOpError("the model has no dense or conv layer")
    return Graph(name, tuple(int(d) for d in input_shape), layers, [str(x) for x in labels], post)
