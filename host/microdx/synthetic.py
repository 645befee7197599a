"""Random models for tests and benchmarks (not trained: only their shapes and value ranges are realistic)."""
from __future__ import annotations

import numpy as np

from microdx.ir import Graph, canonicalize
from microdx.quantize import quantize_graph


def random_graph(sizes, seed: int = 0, name: str = "rand") -> Graph:
    """Float MLP with layer widths `sizes`, ReLU between layers, weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01)."""
    rng = np.random.default_rng(seed)
    ops = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        ops.append(("dense", f"fc{i}", {"w": rng.normal(size=(b, a)) / np.sqrt(a), "b": rng.normal(size=b) * 0.1}))
        if i < len(sizes) - 2:
            ops.append(("relu", f"relu{i}", {}))
    return canonicalize(name, (sizes[0],), ops)


def random_int8(sizes, seed: int = 0, n_calib: int = 64) -> tuple[Graph, np.ndarray]:
    """(int8 graph, the float calibration inputs) of random_graph(sizes, seed)."""
    g = random_graph(sizes, seed)
    x = np.random.default_rng(seed + 1).normal(size=(n_calib, sizes[0]))
    return quantize_graph(g, x)[0], x
