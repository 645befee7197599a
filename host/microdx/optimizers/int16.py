"""Precision scaling up: int16 weights for the chosen dense layers of an int8 model (mixed precision per layer).

The activations stay int8; the marked layers are quantized with 16-bit weights (ops/dense16.py: 2 bytes per weight,
about 256x finer steps than int8), the rest as usual. Use it for the few layers whose int8 rounding costs accuracy,
typically the first (its inputs carry the most information) and the last; the float weights are not changed here.

Knobs: `layers` ("fc1+fc2"; default every dense layer), `min_inputs` (default 1).
"""
from __future__ import annotations

from microdx.ir import Layer
from microdx.optimizers.base import Optimizer, layer_names


class Int16Weights(Optimizer):
    """Mark dense layers for int16 weights. Knobs: layers, min_inputs."""

    name = "int16"
    KNOBS = ("layers", "min_inputs")

    def __init__(self, layers=None, min_inputs=1):
        super().__init__(min_inputs=min_inputs, **({"layers": layers} if layers else {}))
        self.min_inputs, self.layers = int(min_inputs), layer_names(layers)

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        attrs = {k: v for k, v in layer.attrs.items() if k != "codebook_bits"}   # int16 replaces weight sharing
        return ([Layer("dense", layer.name, "f32", dict(layer.tensors), {**attrs, "weight_bits": 16})],
                {"layer": layer.name, "weights": int(layer.tensors["w"].size)})

    def note(self, r: dict) -> str:
        return f"int16 {r['layer']}: {r['weights']:,} weights will be stored as int16 (2 bytes each)"
