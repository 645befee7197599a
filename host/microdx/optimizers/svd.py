"""Weight factorization (DXTK): a dense layer W (m x n) becomes two, W ~= B A with a k-unit linear bottleneck.

Truncated SVD W = U S V^T, kept to rank k, split evenly: A = sqrt(S_k) V_k^T (k x n, no bias, no activation),
B = U_k sqrt(S_k) (m x k, the layer's bias and activation); even split keeps both factors' magnitudes alike, which
int8 per-row scales like. A layer is factorized only when it saves weights and MACs: k (m + n) < m n.

Rank, by the first knob given: `rank` (explicit), `energy` (smallest k keeping that fraction of sum S^2), `error`
(smallest k whose relative Frobenius error sqrt(sum_{i>k} S_i^2 / sum S^2) is at most this; DXTK's redundancy
estimate). Knob `min_inputs` (default 16) leaves small layers alone; `layers` ("fc1+fc2") limits it to those layers.
"""
from __future__ import annotations

import numpy as np

from microdx.errors import MicrodxError
from microdx.ir import Layer
from microdx.optimizers.base import Optimizer, layer_names


def choose_rank(s: np.ndarray, rank=None, energy=None, error=None) -> int:
    """Rank k from singular values `s` (descending) and one of the knobs (see the module docstring)."""
    power = s.astype(np.float64) ** 2
    total = power.sum()
    if rank is not None:
        return int(min(rank, len(s)))
    if total == 0:
        return 1
    kept = np.cumsum(power) / total
    if energy is not None:
        return int(np.searchsorted(kept, energy - 1e-12) + 1)
    residual = np.sqrt(np.clip(1.0 - kept, 0.0, None))      # relative error after keeping k = 1, 2, ...
    return int(np.argmax(residual <= error + 1e-12) + 1) if np.any(residual <= error + 1e-12) else len(s)


def check_rank_knobs(name: str, rank, energy, error) -> None:
    """MicrodxError unless exactly one of rank (a positive integer), energy (0, 1] or error [0, 1) is given."""
    given = [k for k, v in (("rank", rank), ("energy", energy), ("error", error)) if v is not None]
    if len(given) != 1:
        raise MicrodxError(f"{name} needs exactly one of rank=, energy=, error= (got {', '.join(given) or 'none'}); "
                           f"e.g. {name}:energy=0.95")
    if rank is not None and (int(rank) != rank or rank < 1):
        raise MicrodxError(f"{name}: rank={rank} must be a positive integer")
    if energy is not None and not 0 < energy <= 1:
        raise MicrodxError(f"{name}: energy={energy} must be in (0, 1]")
    if error is not None and not 0 <= error < 1:
        raise MicrodxError(f"{name}: error={error} must be in [0, 1)")


class SVD(Optimizer):
    """Truncated-SVD factorization of dense layers. Knobs: rank | energy | error, min_inputs (see module doc)."""

    name = "svd"
    KNOBS = ("rank", "energy", "error", "min_inputs", "layers")

    def __init__(self, rank=None, energy=None, error=None, min_inputs=16, layers=None):
        check_rank_knobs("svd", rank, energy, error)
        super().__init__(**{k: v for k, v in (("rank", rank), ("energy", energy), ("error", error), ("layers", layers))
                            if v is not None}, min_inputs=min_inputs)
        self.rank, self.energy, self.error, self.min_inputs = rank, energy, error, min_inputs
        self.layers = layer_names(layers)

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"].astype(np.float64)
        m, n = w.shape
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        k = choose_rank(s, self.rank, self.energy, self.error)
        row = {"layer": layer.name, "shape": [m, n], "rank": k,
               "relative_error": float(np.sqrt((s[k:] ** 2).sum() / max((s ** 2).sum(), 1e-300))),
               "kept_energy": float((s[:k] ** 2).sum() / max((s ** 2).sum(), 1e-300))}
        if k * (m + n) >= m * n:
            row["skipped"] = f"rank {k} saves nothing: {k} x ({m} + {n}) >= {m} x {n}"
            return [layer], row
        root = np.sqrt(s[:k])
        a = Layer("dense", f"{layer.name}.svd_a", "f32",
                  {"w": (root[:, None] * vt[:k]).astype(np.float32), "b": np.zeros(k, np.float32)}, {"act": None})
        b = Layer("dense", f"{layer.name}.svd_b", "f32",
                  {"w": (u[:, :k] * root[None, :]).astype(np.float32), "b": layer.tensors["b"]}, dict(layer.attrs))
        row.update(weights_before=m * n, weights_after=k * (m + n))
        return [a, b], row

    def note(self, r: dict) -> str:
        return f"svd {r['layer']} {r['shape'][0]}x{r['shape'][1]}: " + (
            f"rank {r['rank']} kept ({r['kept_energy']:.1%} of the energy, relative error {r['relative_error']:.3f})"
            if "skipped" not in r else f"left as is ({r['skipped']})")
