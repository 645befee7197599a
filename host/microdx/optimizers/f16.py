"""Precision scaling for float blobs: float16 storage of the chosen dense layers (mixed precision per layer).

The weights are rounded to float16 here, so the accuracy the recipe reports after this step is what the blob
gives; a float blob (`convert --float`) then stores them as float16 (ops/dense16.py, half the bytes of float32) and
the device computes in its own float. Biases stay float32. For int8 blobs use int8, int16 or kmeans instead: an
int8 conversion of a graph with float16-marked layers is refused.

Knobs: `layers` ("fc1+fc2"; default every dense layer), `min_inputs` (default 1).
"""
from __future__ import annotations

import numpy as np

from microdx.ir import Layer
from microdx.optimizers.base import Optimizer, layer_names

F16_MAX = 65504.0


class Float16Storage(Optimizer):
    """Round dense weights to float16 and mark them for float16 storage. Knobs: layers, min_inputs."""

    name = "f16"
    KNOBS = ("layers", "min_inputs")

    def __init__(self, layers=None, min_inputs=1):
        super().__init__(min_inputs=min_inputs, **({"layers": layers} if layers else {}))
        self.min_inputs, self.layers = int(min_inputs), layer_names(layers)

    def selects(self, layer) -> bool:
        """Dense layers whose weights float16 can hold (|w| <= 65504): others stay float32, with a note."""
        return super().selects(layer) and float(np.abs(layer.tensors["w"]).max()) <= F16_MAX

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"]
        half = w.astype(np.float16).astype(np.float32)
        err = float(np.linalg.norm(half - w) / max(float(np.linalg.norm(w)), 1e-300))
        return ([Layer("dense", layer.name, "f32", {**layer.tensors, "w": half}, {**layer.attrs, "storage": "f16"})],
                {"layer": layer.name, "weights": int(w.size), "relative_error": err})

    def note(self, r: dict) -> str:
        return (f"f16 {r['layer']}: {r['weights']:,} weights stored as float16 (2 bytes each), "
                f"relative error {r['relative_error']:.2e}")
