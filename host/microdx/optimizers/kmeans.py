"""Weight sharing (precision scaling, Deep Compression style): each dense layer's weights become one of 2^bits
shared values, found by k-means (scikit-learn's KMeans on the layer's weights). int8 quantization then stores the
layer as a `codebook` layer (ops/codebook.py): 2^bits int8 values and `bits`-bit indices, packed.

Knobs: `bits` (2 to 6), `min_inputs` (default 16) and `layers` ("fc1+fc2"). A layer that already has at most 2^bits
distinct values keeps them exactly.
"""
from __future__ import annotations

import numpy as np

from microdx.errors import MicrodxError
from microdx.ir import Layer
from microdx.optimizers.base import Optimizer, layer_names

MAX_SAMPLES = 20000   # KMeans fits on at most this many weights of a layer (a fixed-seed sample), then labels all


def share_weights(w: np.ndarray, bits: int, seed: int = 0) -> np.ndarray:
    """`w` with every value replaced by the nearest of at most 2^bits k-means centroids."""
    from sklearn.cluster import KMeans

    flat = w.reshape(-1, 1).astype(np.float64)
    distinct = np.unique(flat)
    if len(distinct) <= 2 ** bits:
        return w.copy()
    sample = flat if len(flat) <= MAX_SAMPLES else flat[np.random.default_rng(seed).choice(len(flat), MAX_SAMPLES,
                                                                                            replace=False)]
    km = KMeans(n_clusters=2 ** bits, n_init=1, random_state=seed,
                init=np.linspace(distinct[0], distinct[-1], 2 ** bits).reshape(-1, 1)).fit(sample)
    centroids = km.cluster_centers_.reshape(-1)
    return centroids[km.predict(flat)].reshape(w.shape).astype(w.dtype)


class KMeansShare(Optimizer):
    """k-means weight sharing of dense layers. Knobs: bits (2..6), min_inputs, layers."""

    name = "kmeans"
    KNOBS = ("bits", "min_inputs", "layers")

    def __init__(self, bits=None, min_inputs=16, layers=None):
        if bits not in (2, 3, 4, 5, 6):
            raise MicrodxError(f"kmeans: bits={bits} must be 2, 3, 4, 5 or 6, e.g. kmeans:bits=4")
        super().__init__(bits=bits, min_inputs=min_inputs, **({"layers": layers} if layers else {}))
        self.bits, self.min_inputs, self.layers = int(bits), int(min_inputs), layer_names(layers)

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"]
        shared = share_weights(w, self.bits)
        err = float(np.linalg.norm(shared - w) / max(float(np.linalg.norm(w)), 1e-300))
        attrs = {k: v for k, v in layer.attrs.items() if k != "weight_bits"}   # the last precision step wins
        return ([Layer("dense", layer.name, "f32", {**layer.tensors, "w": shared},
                       {**attrs, "codebook_bits": self.bits})],
                {"layer": layer.name, "bits": self.bits, "values": int(len(np.unique(shared))), "relative_error": err})

    def note(self, r: dict) -> str:
        return f"kmeans {r['layer']}: {r['values']} shared values ({r['bits']} bits), relative error {r['relative_error']:.3f}"
