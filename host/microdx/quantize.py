"""Full-integer int8 quantization of a float Graph, calibrated on representative inputs."""
from __future__ import annotations

import math
import numpy as np

from microdx.errors import QuantizationError
from microdx.ir import Graph, layer_shapes, skip_index, skip_sources
from microdx.ops import codebook, dense16, op, sparse


def act_qparams(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric per-tensor int8 (scale, zero point) covering [lo, hi] and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zero = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zero


def quantize_graph(graph: Graph, calib_x: np.ndarray) -> tuple[Graph, list[str]]:
    """int8 Graph (per-row symmetric weights, per-tensor activations calibrated on `calib_x`).

    calib_x: (N, inputs) or (N, *input_shape) float array of representative inputs (a few hundred is plenty).
    Returns the quantized graph and notes about choices the user should know of.
    """
    from microdx.reference import layer_input

    x = np.asarray(calib_x, dtype=np.float64)
    n = math.prod(graph.input_shape)
    if x.ndim > 2 and x.shape[1:] == tuple(graph.input_shape):
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != n or len(x) == 0:
        raise QuantizationError(f"calibration data has shape {x.shape}; need (N, {n}) with N > 0")
    if not np.isfinite(x).all():
        raise QuantizationError("calibration data holds NaN or Inf (row %d)" % np.argwhere(~np.isfinite(x))[0][0])
    in_q = act_qparams(x.min(), x.max())
    cur_q, h, layers, notes = in_q, x, [], []
    marked = [layer.name for layer in graph.layers if layer.attrs.get("storage") == "f16"]
    if marked:
        raise QuantizationError(f"layer(s) {', '.join(marked)} are marked for float16 storage (recipe step f16), "
                                f"which is for float blobs: add --float, or use int16 / kmeans for an int8 blob")
    skips = skip_sources(graph)
    saved = {-1: (h, in_q)} if -1 in skips else {}   # residual adds: an earlier output and its quantization
    for i, (layer, (s_in, _)) in enumerate(zip(graph.layers, layer_shapes(graph))):
        kind = op(layer.kind)
        h = layer_input(layer, h, s_in)
        power = np.mean(h * h, axis=0)          # per-input mean square: weighs each weight's rounding error
        extra = {}
        if layer.kind == "add":
            skip, extra["skip_q"] = saved[skip_index(graph.layers, i)]
            h = kind.forward_float(layer, (h, skip.reshape(h.shape)))
        else:
            h = kind.forward_float(layer, h)
        if not np.isfinite(h).all():
            raise QuantizationError(f"layer '{layer.name}' overflows to Inf/NaN on the calibration data; "
                                    f"check its weights and the input scaling")
        quantizer = dense16 if layer.attrs.get("weight_bits") == 16 else kind   # mixed precision: recipe step int16
        qlayer, cur_q, layer_notes = quantizer.quantize(layer, cur_q, act_qparams(h.min(), h.max()), power, **extra)
        if i in skips:
            saved[i] = (h, cur_q)
        qlayer = codebook.maybe_codebook(qlayer)  # packed indices when k-means shared its weights
        qlayer = sparse.maybe_sparse(qlayer)     # CSR when the layer's zero weights make it smaller
        layers.append(qlayer)
        notes += layer_notes
    return graph.copy(layers=layers, input_q=in_q, output_q=cur_q), notes


def float_graph(graph: Graph) -> Graph:
    """The float graph as a float blob stores it: layers marked by the f16 step get float16 weights (kind dense16),
    the rest stay float32. int16 marks only apply to int8 blobs and are dropped here."""
    layers = [dense16.as_float16(layer) if layer.attrs.get("storage") == "f16" else layer for layer in graph.layers]
    return graph.copy(layers=layers)
