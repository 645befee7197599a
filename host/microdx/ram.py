"""The device's RAM plan, computed on the host (must agree with device/udx/plan.py; a test checks it)."""
from __future__ import annotations

import math

from microdx.ir import Graph, layer_shapes
from microdx.ops import op

DEFAULT_SCRATCH = 16384  # bytes; device/udx/plan.py DEFAULT_SCRATCH


def plan(graph: Graph) -> dict:
    """Per-layer and whole-model RAM in bytes.

    layers[i]: act_in/act_out (activation bytes), row_scratch (smallest weight tile) and full_scratch;
    skip_bytes: the skip buffer residual adds need (0 without).
    min_budget: the smallest `budget` udx.Model accepts; full_budget: budget with every layer in one tile;
    default_budget: what udx.Model uses when given no budget.
    """
    item = 1 if graph.dtype == "i8" else 4
    per = 1 if graph.dtype == "i8" else 2   # an f32 scratch array is built from a same-size bytes object
    shapes = [(math.prod(s_in), math.prod(s_out)) for s_in, s_out in layer_shapes(graph)]  # activation elements
    n_in, n_out = math.prod(graph.input_shape), shapes[-1][1]
    layers, act_max = [], n_in
    for layer, (s_in, s_out) in zip(graph.layers, shapes):
        row, full = op(layer.kind).scratch_bytes(layer)
        layers.append({"act_in": s_in * item, "act_out": s_out * item, "row_scratch": row, "full_scratch": full})
        act_max = max(act_max, s_out)
    # residual adds: one skip buffer of the largest activation an add takes from an earlier layer (or the input)
    skip = max((s_in for layer, (s_in, _) in zip(graph.layers, shapes) if layer.kind == "add"), default=0)
    fixed = 2 * (2 * act_max + n_out + skip) * item   # two ping-pong buffers + output (+ skip), counted double
    smin = max(x["row_scratch"] for x in layers)
    sfull = max(x["full_scratch"] for x in layers)
    return {"layers": layers, "activation_bytes": fixed, "skip_bytes": skip * item, "min_budget": fixed + per * smin,
            "full_budget": fixed + per * sfull,
            "default_budget": fixed + per * min(sfull, max(smin, DEFAULT_SCRATCH))}
