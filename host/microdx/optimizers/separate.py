"""Convolution separation (DXTK; Jaderberg et al. 2014, Tai et al. 2016): a kh x kw conv becomes a kh x 1 conv
into K intermediate channels, then a 1 x kw conv out of them.

With W (N, kh, kw, C) arranged as the matrix M[(c, h), (n, w)] = W[n, h, w, c], the truncated SVD M ~= U_K S_K V_K^T
gives the vertical filters V[k, h, 0, c] = U[(c, h), k] sqrt(s_k) and the horizontal ones H[n, 0, w, k] =
sqrt(s_k) V^T[k, (n, w)], and sum_k H[n, 0, w, k] V[k, h, 0, c] = W[n, h, w, c] for the full rank: exact, padding
included (the vertical conv takes the top/bottom padding and the vertical stride, the horizontal one the left/right
padding, the horizontal stride, the bias and the activation; zero columns stay zero through the vertical conv, which
has no bias). K is chosen like the SVD rank (svd.choose_rank: `rank`, `energy` or `error`), and a layer is separated
only where it saves both weights and MACs:

    K (kh C + kw N) < kh kw C N   and   Ho W K kh C + Ho Wo N kw K < Ho Wo N kh kw C
"""
from __future__ import annotations

import numpy as np

from microdx.ir import Layer
from microdx.ops import conv2d
from microdx.optimizers.base import Optimizer, layer_names
from microdx.optimizers.svd import check_rank_knobs, choose_rank


class Separate(Optimizer):
    """Separate kh x kw convolutions (kh, kw > 1) into kh x 1 then 1 x kw. Knobs: rank | energy | error, layers."""

    name = "separate"
    KNOBS = ("rank", "energy", "error", "layers")

    def __init__(self, rank=None, energy=None, error=None, layers=None):
        check_rank_knobs("separate", rank, energy, error)
        super().__init__(**{k: v for k, v in (("rank", rank), ("energy", energy), ("error", error), ("layers", layers))
                            if v is not None})
        self.rank, self.energy, self.error, self.layers = rank, energy, error, layer_names(layers)

    def selects(self, layer) -> bool:
        return (layer.kind == "conv2d" and layer.dtype == "f32" and min(layer.attrs["kernel"]) > 1
                and not (self.layers and layer.name not in self.layers))

    def per_layer(self, layer: Layer) -> tuple[list, dict]:
        w = layer.tensors["w"].astype(np.float64)
        n, kh, kw, c = w.shape
        h_in, w_in, _ = layer.attrs["in_shape"]
        (sh, sw), (pt, pb, pl, pr) = layer.attrs["stride"], layer.attrs["pad"]
        u, s, vt = np.linalg.svd(w.transpose(3, 1, 0, 2).reshape(c * kh, n * kw), full_matrices=False)
        k = choose_rank(s, self.rank, self.energy, self.error)
        root = np.sqrt(s[:k])
        vertical = Layer("conv2d", f"{layer.name}.sep_v", "f32",
                         {"w": (u[:, :k] * root).reshape(c, kh, k).transpose(2, 1, 0)[:, :, None, :].astype(np.float32),
                          "b": np.zeros(k, np.float32)},
                         {"act": None, "in_shape": (h_in, w_in, c), "kernel": (kh, 1), "stride": (sh, 1),
                          "pad": (pt, pb, 0, 0)})
        ho = conv2d.layer_out_shape(vertical)[0]
        horizontal = Layer("conv2d", f"{layer.name}.sep_h", "f32",
                           {"w": (root[:, None] * vt[:k]).reshape(k, n, kw).transpose(1, 2, 0)[:, None, :, :]
                            .astype(np.float32), "b": layer.tensors["b"]},
                           {**layer.attrs, "in_shape": (ho, w_in, k), "kernel": (1, kw), "stride": (1, sw),
                            "pad": (0, 0, pl, pr)})
        total = max(float((s ** 2).sum()), 1e-300)
        row = {"layer": layer.name, "kernel": [kh, kw], "channels": [c, n], "rank": k,
               "relative_error": float(np.sqrt((s[k:] ** 2).sum() / total)),
               "kept_energy": float((s[:k] ** 2).sum() / total),
               "weights_before": int(w.size), "weights_after": int(vertical.tensors["w"].size
                                                                   + horizontal.tensors["w"].size),
               "macs_before": conv2d.macs(layer), "macs_after": conv2d.macs(vertical) + conv2d.macs(horizontal)}
        if row["weights_after"] >= row["weights_before"] or row["macs_after"] >= row["macs_before"]:
            row["skipped"] = (f"K={k} saves nothing: {row['weights_after']:,} weights and {row['macs_after']:,} MACs "
                              f"against {row['weights_before']:,} and {row['macs_before']:,}")
            return [layer], row
        return [vertical, horizontal], row

    def note(self, r: dict) -> str:
        head = f"separate {r['layer']} {r['kernel'][0]}x{r['kernel'][1]} {r['channels'][0]}->{r['channels'][1]}: "
        if "skipped" in r:
            return head + f"left as is ({r['skipped']})"
        return head + (f"K={r['rank']} ({r['kept_energy']:.1%} of the energy, relative error {r['relative_error']:.3f}),"
                       f" MACs {r['macs_before']:,} -> {r['macs_after']:,}")
