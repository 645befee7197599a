"""Magnitude pruning (unstructured): zero the smallest weights of each dense layer. Quantization then stores a
layer as CSR (ops/sparse.py) wherever that is smaller once its index bytes are counted: about 2 bytes per kept
weight (3 above 256 inputs) against 1 byte per weight dense, so it pays from roughly half the weights pruned.

Knob `sparsity`: the fraction of each dense layer's weights set to zero (the smallest |w| of that layer; ties broken
by position). `min_inputs` (default 16) leaves small layers alone; `layers` ("fc1+fc2") limits it to those layers. Without retraining accuracy falls quickly past a
layer's redundancy: `microdx convert` prints it.
"""
from __future__ import annotations

import numpy as np

from microdx.errors import MicrodxError
from microdx.ir import Layer
from microdx.optimizers.base import Optimizer, layer_names


class Prune(Optimizer):
    """Magnitude pruning of dense layers. Knobs: sparsity (fraction zeroed per layer), min_inputs."""

    name = "prune"
    KNOBS = ("sparsity", "min_inputs", "layers")

    def __init__(self, sparsity=None, min_inputs=16, layers=None):
        if sparsity is None or not 0 <= sparsity < 1:
            raise MicrodxError(f"prune: sparsity={sparsity} must be in [0, 1), e.g. prune:sparsity=0.8")
        super().__init__(sparsity=sparsity, min_inputs=min_inputs, **({"layers": layers} if layers else {}))
        self.sparsity, self.min_inputs = float(sparsity), int(min_inputs)
        self.layers = layer_names(layers)

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"].copy()
        drop = int(np.floor(self.sparsity * w.size + 1e-9))
        removed = np.zeros(w.size, bool)
        removed[np.argsort(np.abs(w), axis=None, kind="stable")[:drop]] = True
        energy = float((w.reshape(-1)[removed] ** 2).sum() / max(float((w ** 2).sum()), 1e-300))
        w.reshape(-1)[removed] = 0.0
        return ([Layer("dense", layer.name, "f32", {**layer.tensors, "w": w}, dict(layer.attrs))],
                {"layer": layer.name, "weights": int(w.size), "zeroed": drop, "relative_error": float(np.sqrt(energy))})

    def note(self, r: dict) -> str:
        return (f"prune {r['layer']}: {r['zeroed']:,} of {r['weights']:,} weights zeroed "
                f"(relative error {r['relative_error']:.3f})")
