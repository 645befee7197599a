"""numpy executors: the float model, and the device's exact integer arithmetic (bit-exact reference)."""
from __future__ import annotations

import math
import numpy as np

from microdx.errors import InputShapeError
from microdx.ir import Graph, layer_shapes, skip_index, skip_sources
from microdx.ops import op


def layer_input(layer, h: np.ndarray, in_shape) -> np.ndarray:
    """Activations `h` (N, ...) in the form layer kind expects: (N, H, W, C) for spatial kinds (conv), else (N, n)
    flattened in row-major order (what the device's flat buffers hold either way)."""
    spatial = getattr(op(layer.kind), "SPATIAL", False)
    return h.reshape((len(h), *in_shape) if spatial else (len(h), -1))


def run_layers(graph: Graph, h: np.ndarray, forward) -> np.ndarray:
    """`forward(kind module, layer, input)` over the layers in order; the outputs flattened to (N, outputs). An add
    layer's input is the pair (x, skip), skip the output of the layer it names (attrs skip; None: the input)."""
    skips = skip_sources(graph)
    saved = {-1: h} if -1 in skips else {}
    for i, (layer, (s_in, _)) in enumerate(zip(graph.layers, layer_shapes(graph))):
        x = layer_input(layer, h, s_in)
        if layer.kind == "add":
            x = (x, saved[skip_index(graph.layers, i)].reshape(x.shape))
        h = forward(op(layer.kind), layer, x)
        if i in skips:
            saved[i] = h
    return h.reshape(len(h), -1)


def quantize_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Real-valued inputs (N, n), any numeric dtype -> int8 codes with the graph's input scale and zero point
    (round half to even, clipped to -128..127)."""
    scale, zero = graph.input_q
    return np.clip(np.round(np.asarray(x, dtype=np.float64) / scale) + zero, -128, 127).astype(np.int8)


def prepare_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Inputs in the graph's device dtype: int8 codes for i8 graphs, float32 for f32 graphs. x: (N, n) or (n,).

    Array convention of this API: a float array holds real values (quantized here for i8 graphs); an integer
    array holds int8 codes, range-checked and used as they are. Data files say which they hold by name
    instead (x: real values of any dtype, x_q: int8 codes); microdx.data converts x to float64 on loading.
    """
    x = np.asarray(x)
    n = math.prod(graph.input_shape)
    if x.ndim == 1 or x.shape == tuple(graph.input_shape):
        x = x.reshape(1, -1)
    if x.ndim > 2 and x.shape[1:] == tuple(graph.input_shape):   # (N, H, W, C): flattened row-major, as stored
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != n:
        shape = ", ".join(str(d) for d in graph.input_shape)
        raise InputShapeError(f"input has shape {x.shape}; the model expects (N, {n})"
                              + (f" or (N, {shape})" if len(graph.input_shape) > 1 else ""))
    if graph.dtype == "f32":
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < -128 or x.max() > 127):
            raise InputShapeError(f"integer input outside int8 range: [{x.min()}, {x.max()}] (integer arrays are "
                                  f"int8 codes here; pass real values as floats)")
        return x.astype(np.int8)
    return quantize_input(graph, x)


def run(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Outputs the device produces: int8 logits for i8 graphs, float32 for f32 graphs. x: (N, n)."""
    return run_layers(graph, prepare_input(graph, x), lambda kind, layer, h: kind.forward_i8(layer, h)
                      if layer.dtype == "i8" else kind.forward_f32(layer, h))


def run_float(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float64 outputs of an unquantized graph (the accuracy baseline)."""
    h = np.asarray(x, dtype=np.float64)
    return run_layers(graph, h.reshape(len(h), -1), lambda kind, layer, h: kind.forward_float(layer, h))


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max equals the class index in `y` (0 .. outputs-1; map label values to indices
    first: microdx.data.class_indices). Needs at least one row."""
    y = np.asarray(y)
    if len(y) == 0 or len(y) != len(outputs):
        raise InputShapeError(f"accuracy needs one class index per output row, got {len(y)} for {len(outputs)} rows")
    return float(np.mean(np.argmax(outputs, axis=1) == y))
