"""Parameter cleaning (DXTK): fold every elementwise scale/shift into a neighbouring dense layer, exactly.

Importers turn input normalisation (StandardScaler/Scaler, Sub/Div), BatchNormalization and Mul/Add/Sub/Div by
constants into `affine` layers; the device has no kernel for them, and it needs none:

  dense then affine (no ReLU between):  W' = diag(s) W,  b' = s * b + t      (the affine's ReLU moves to W')
  affine (no ReLU) then dense:          W' = W diag(s),  b' = b + W t

Two affines in a row are composed first. Backward folding is tried next (BatchNormalization after a Gemm), forward folding second (input normalisation in
front of the first layer). An affine that can do neither (say between a ReLU and the output) is an error naming it.
Folding is done in float64 and is exact up to float32 rounding of the result.
"""
from __future__ import annotations

import numpy as np

from microdx.errors import UnsupportedOpError
from microdx.ir import Graph, Layer
from microdx.optimizers.base import Optimizer, OptimizerResult


def _dense(name, w, b, act) -> Layer:
    return Layer("dense", name, "f32", {"w": w.astype(np.float32), "b": b.astype(np.float32)}, {"act": act})


def _fold_into_previous(dense: Layer, aff: Layer) -> Layer:
    s, t = aff.tensors["scale"].astype(np.float64), aff.tensors["shift"].astype(np.float64)
    w, b = dense.tensors["w"].astype(np.float64), dense.tensors["b"].astype(np.float64)
    return _dense(dense.name, s[:, None] * w, s * b + t, aff.attrs.get("act"))


def _fold_into_next(aff: Layer, dense: Layer) -> Layer:
    s, t = aff.tensors["scale"].astype(np.float64), aff.tensors["shift"].astype(np.float64)
    w, b = dense.tensors["w"].astype(np.float64), dense.tensors["b"].astype(np.float64)
    return _dense(dense.name, w * s[None, :], b + w @ t, dense.attrs.get("act"))


class Clean(Optimizer):
    """Fold elementwise scale/shift layers into dense layers. No knobs; exact."""

    name = "clean"

    def apply(self, graph: Graph) -> OptimizerResult:
        layers, folded = list(graph.layers), []
        # a layer whose output a residual add takes keeps its output: nothing is folded into it from behind
        skip_sources = {layer.attrs.get("skip") for layer in layers if layer.kind == "add"}
        i = 0
        while i < len(layers):
            aff = layers[i]
            if aff.kind != "affine":
                i += 1
                continue
            prev = layers[i - 1] if i > 0 else None
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if nxt is not None and nxt.kind == "affine" and aff.attrs.get("act") is None:   # two in a row: compose
                s1, t1 = aff.tensors["scale"].astype(np.float64), aff.tensors["shift"].astype(np.float64)
                s2, t2 = nxt.tensors["scale"].astype(np.float64), nxt.tensors["shift"].astype(np.float64)
                layers[i:i + 2] = [Layer("affine", aff.name, "f32", {"scale": s1 * s2, "shift": t1 * s2 + t2},
                                         {"act": nxt.attrs.get("act")})]
                folded.append({"layer": aff.name, "folded": nxt.name, "direction": "into the scale/shift before"})
            elif (prev is not None and prev.kind == "dense" and prev.attrs.get("act") is None
                  and prev.name not in skip_sources):
                layers[i - 1:i + 1] = [_fold_into_previous(prev, aff)]
                folded.append({"layer": prev.name, "folded": aff.name, "direction": "into the layer before"})
            elif nxt is not None and nxt.kind == "dense" and aff.attrs.get("act") is None:
                layers[i:i + 2] = [_fold_into_next(aff, nxt)]
                folded.append({"layer": nxt.name, "folded": aff.name, "direction": "into the layer after"})
            else:
                where = "after a ReLU" if prev is not None and prev.attrs.get("act") else "where no dense layer is next"
                raise UnsupportedOpError(
                    f"node '{aff.name}': an elementwise scale/shift {where} cannot be folded into a dense layer, and "
                    f"the device has no kernel for it; move it next to a Linear/Gemm layer (before its ReLU)")
        out = graph.copy(layers=layers)
        notes = [f"folded '{f['folded']}' {f['direction']} ('{f['layer']}')" for f in folded]
        return OptimizerResult(out, self.report(graph, out, folded, notes))


def clean(graph: Graph) -> Graph:
    """The cleaned graph (convenience for `Clean().apply(graph).graph`)."""
    return Clean().apply(graph).graph
