"""Weight factorization (DXTK): a dense layer W (m x n) becomes two, W ~= B A with a k-unit linear bottleneck.

Truncated SVD W = U S V^T, kept to rank k, split evenly: A = sqrt(S_k) V_k^T (k x n, no bias, no activation),
B = U_k sqrt(S_k) (m x k, the layer's bias and activation); even split keeps both factors' magnitudes alike, which
int8 per-row scales like. A layer is factorized only when it saves weights and MACs: k (m + n) < m n.

Rank, by the one knob given: `rank` (explicit), `energy` (smallest k keeping that fraction of sum S^2), `error`
(smallest k whose relative Frobenius error sqrt(sum_{i>k} S_i^2 / sum S^2) is at most this; DXTK's redundancy
estimate), or `bytes`: a budget for the chosen layers together, in bytes of their int8 tensors (a dense m x n layer
m (n + 8), a factor pair k (n + 8) + m (k + 8): weights plus each row's bias and multiplier). Ranks start at 1 and
grow greedily by the most relative energy kept per byte; a layer may also go back to dense when that is the best
use of the bytes left (budget_ranks). Knob `min_inputs` (default 16) leaves small layers alone; `layers` ("fc1+fc2") limits it to those layers.
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


def check_rank_knobs(name: str, rank, energy, error, **more) -> None:
    """MicrodxError unless exactly one of rank (a positive integer), energy (0, 1], error [0, 1) or a knob of `more`
    (bytes: a positive integer) is given."""
    knobs = {"rank": rank, "energy": energy, "error": error, **more}
    given = [k for k, v in knobs.items() if v is not None]
    if len(given) != 1:
        raise MicrodxError(f"{name} needs exactly one of {', '.join(k + '=' for k in knobs)} (got "
                           f"{', '.join(given) or 'none'}); e.g. {name}:energy=0.95")
    if more.get("bytes") is not None and (int(more["bytes"]) != more["bytes"] or more["bytes"] < 1):
        raise MicrodxError(f"{name}: bytes={more['bytes']} must be a positive integer, e.g. {name}:bytes=20000")
    if rank is not None and (int(rank) != rank or rank < 1):
        raise MicrodxError(f"{name}: rank={rank} must be a positive integer")
    if energy is not None and not 0 < energy <= 1:
        raise MicrodxError(f"{name}: energy={energy} must be in (0, 1]")
    if error is not None and not 0 <= error < 1:
        raise MicrodxError(f"{name}: error={error} must be in [0, 1)")


def int8_bytes(m: int, n: int, k: int | None = None) -> int:
    """Bytes of int8 tensors of a dense m x n layer (k None) or of its rank-k factor pair: weights + 8 per row."""
    return m * (n + 8) if k is None else k * (n + 8) + m * (k + 8)


def budget_ranks(shapes_and_values: dict, budget: int) -> dict:
    """{layer: rank, or None to stay dense} whose int8 bytes (int8_bytes) sum to at most `budget`.

    shapes_and_values: {layer: ((m, n), singular values)}. Every layer starts at rank 1; then, while bytes remain,
    the step with the most relative energy (s^2 / sum s^2 of its layer) per byte is taken: the layer's next rank,
    or, for the energy still missing, the whole dense layer. MicrodxError when rank 1 everywhere exceeds `budget`.
    """
    state = {name: 1 for name in shapes_and_values}
    energy = {name: s.astype(np.float64) ** 2 / max(float((s.astype(np.float64) ** 2).sum()), 1e-300)
              for name, (_, s) in shapes_and_values.items()}

    def cost(name, k):
        (m, n), _ = shapes_and_values[name]
        return int8_bytes(m, n, k)

    used = sum(cost(name, 1) for name in state)
    if used > budget:
        raise MicrodxError(f"svd:bytes={budget}: rank 1 in every chosen layer already takes {used:,} bytes; raise "
                           f"bytes, or name fewer layers (layers=)")
    while True:
        steps = []
        for name, k in state.items():
            if k is None:
                continue
            (m, n), _ = shapes_and_values[name]
            e = energy[name]
            if k < len(e) and cost(name, k + 1) < cost(name, None):
                steps.append((e[k] / (cost(name, k + 1) - cost(name, k)), name, k + 1))
            steps.append(((1.0 - e[:k].sum()) / max(cost(name, None) - cost(name, k), 1), name, None))
        steps = [st for st in steps if used - cost(st[1], state[st[1]]) + cost(st[1], st[2]) <= budget]
        if not steps:
            return state
        _, name, k = max(steps, key=lambda st: st[0])
        used += cost(name, k) - cost(name, state[name])
        state[name] = k


class SVD(Optimizer):
    """Truncated-SVD factorization of dense layers. Knobs: rank | energy | error | bytes, min_inputs, layers (see
    the module doc)."""

    name = "svd"
    KNOBS = ("rank", "energy", "error", "bytes", "min_inputs", "layers")

    def __init__(self, rank=None, energy=None, error=None, bytes=None, min_inputs=16, layers=None):
        check_rank_knobs("svd", rank, energy, error, bytes=bytes)
        super().__init__(**{k: v for k, v in (("rank", rank), ("energy", energy), ("error", error), ("bytes", bytes),
                                              ("layers", layers)) if v is not None}, min_inputs=min_inputs)
        self.rank, self.energy, self.error, self.bytes, self.min_inputs = rank, energy, error, bytes, min_inputs
        self.layers = layer_names(layers)
        self._ranks = {}

    def apply(self, graph):
        """As Optimizer.apply; with `bytes`, the ranks of all chosen layers are first set together (budget_ranks)."""
        if self.bytes is not None:
            chosen = {layer.name: (layer.tensors["w"].shape, np.linalg.svd(layer.tensors["w"].astype(np.float64),
                                                                           compute_uv=False))
                      for layer in graph.layers if self.selects(layer)}
            self._ranks = budget_ranks(chosen, int(self.bytes))
        return super().apply(graph)

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"].astype(np.float64)
        m, n = w.shape
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        k = self._ranks.get(layer.name, len(s)) if self.bytes is not None else \
            choose_rank(s, self.rank, self.energy, self.error)
        k = len(s) if k is None else k     # dense within the byte budget
        row = {"layer": layer.name, "shape": [m, n], "rank": k,
               "relative_error": float(np.sqrt((s[k:] ** 2).sum() / max((s ** 2).sum(), 1e-300))),
               "kept_energy": float((s[:k] ** 2).sum() / max((s ** 2).sum(), 1e-300))}
        if self.bytes is not None and self._ranks.get(layer.name) is None:
            row["skipped"] = f"kept dense: the byte budget allows all of it ({int8_bytes(m, n):,} bytes)"
            return [layer], row
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
