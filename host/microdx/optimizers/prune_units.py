"""Unit pruning (structured): remove the least important hidden units of each dense layer, with the matching
inputs of the layer after it. Both layers shrink, so bytes and MACs drop with no new kernel.

Importance of unit j of layer i: ||W_i[j, :]|| * ||W_(i+1)[:, j]|| (how much signal can reach it, times how much of
it reaches the next layer). A removed unit's output at zero input, act(b_i[j]), is folded into the next layer's bias:
exact for dead units (weights ~0, a constant output), the unit's resting contribution otherwise.
Output units are never removed. Knob: `sparsity`, the fraction of each hidden layer's units to remove (0..1).
"""
from __future__ import annotations

import numpy as np

from microdx.errors import MicrodxError
from microdx.ir import Graph, Layer
from microdx.optimizers.base import Optimizer, OptimizerResult


class PruneUnits(Optimizer):
    """Structured pruning of hidden dense units. Knob: sparsity (fraction removed per hidden layer)."""

    name = "prune_units"
    KNOBS = ("sparsity",)

    def __init__(self, sparsity=None):
        if sparsity is None or not 0 <= sparsity < 1:
            raise MicrodxError(f"prune_units: sparsity={sparsity} must be in [0, 1), e.g. prune_units:sparsity=0.3")
        super().__init__(sparsity=sparsity)
        self.sparsity = float(sparsity)

    def apply(self, graph: Graph) -> OptimizerResult:
        layers = list(graph.layers)
        rows = []
        for i in range(len(layers) - 1):
            cur, nxt = layers[i], layers[i + 1]
            if cur.kind != "dense" or nxt.kind != "dense" or cur.dtype != "f32":
                continue
            w, b = cur.tensors["w"].astype(np.float64), cur.tensors["b"].astype(np.float64)
            w2, b2 = nxt.tensors["w"].astype(np.float64), nxt.tensors["b"].astype(np.float64)
            m = len(w)
            drop = int(np.floor(self.sparsity * m + 1e-9))
            drop = min(drop, m - 1)
            if drop == 0:
                rows.append({"layer": cur.name, "units": m, "removed": 0})
                continue
            score = np.linalg.norm(w, axis=1) * np.linalg.norm(w2, axis=0)
            gone = np.sort(np.argsort(score, kind="stable")[:drop])
            keep = np.setdiff1d(np.arange(m), gone)
            rest = b[gone] if cur.attrs.get("act") is None else np.maximum(b[gone], 0)
            layers[i] = Layer("dense", cur.name, "f32", {"w": w[keep].astype(np.float32), "b": b[keep].astype(np.float32)},
                              dict(cur.attrs))
            layers[i + 1] = Layer("dense", nxt.name, "f32", {"w": w2[:, keep].astype(np.float32),
                                                            "b": (b2 + w2[:, gone] @ rest).astype(np.float32)},
                                  dict(nxt.attrs))
            rows.append({"layer": cur.name, "units": m, "removed": int(drop),
                         "largest_removed_score": float(score[gone].max()), "smallest_kept_score": float(score[keep].min())})
        out = graph.copy(layers=layers)
        notes = [f"prune_units {r['layer']}: removed {r['removed']} of {r['units']} units" for r in rows]
        return OptimizerResult(out, self.report(graph, out, rows, notes))
