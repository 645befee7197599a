"""Fine-tuning as a recipe step (Deep Compression's retraining): the compressed float graph trains on labelled data
while pruned weights stay exactly 0.0 and shared (kmeans) weights stay shared, so the blob keeps its CSR and codebook
layers and wins back accuracy.

Knobs: `epochs` (default 5), `lr` (Adam's step size, default 1e-3) and `batch` (rows per step, default 64). It needs
training data, which `microdx convert` passes from --calib (x and its labels y). With PyTorch (the `torch` extra)
any float dense graph trains (microdx.retrain_torch). Without it a plain MLP (dense layers, ReLU between them, as
microdx.retrain.finetune_mlp takes) trains with scikit-learn one epoch at a time, put back on the constraints after
each epoch (pruned weights zeroed, each group of shared weights set to its mean); `batch` does not apply there
(scikit-learn takes min(200, N) rows per step).
"""
from __future__ import annotations

import numbers

import numpy as np

from microdx import reference, retrain_torch
from microdx.errors import MicrodxError
from microdx.ir import Graph, Layer
from microdx.optimizers.base import Optimizer, OptimizerResult


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _project(before: Graph, after: Graph) -> Graph:
    """`after` put back on `before`'s constraints: its zero weights to 0.0, and in codebook layers each group of
    weights that shared a value to the group's mean (the nearest such matrix), a group at 0.0 staying there."""
    layers = []
    for old, new in zip(before.layers, after.layers):
        w0, w = old.tensors["w"], new.tensors["w"].copy()
        if "codebook_bits" in old.attrs:
            values, index = np.unique(w0, return_inverse=True)
            index = index.reshape(-1)
            means = np.bincount(index, weights=w.reshape(-1)) / np.bincount(index)
            means[values == 0] = 0.0
            w = means[index].reshape(w.shape).astype(np.float32)
        else:
            w[w0 == 0] = 0.0
        layers.append(Layer(new.kind, new.name, new.dtype, {**new.tensors, "w": w}, dict(new.attrs)))
    return after.copy(layers=layers)


class Finetune(Optimizer):
    """Fine-tuning under the compression's masks and shared weights. Knobs: epochs, lr, batch (see module doc)."""

    name = "finetune"
    KNOBS = ("epochs", "lr", "batch")
    needs_data = True      # convert passes (x, class indices) from --calib

    def __init__(self, epochs=5, lr=1e-3, batch=64):
        if not _is_int(epochs) or epochs < 1:
            raise MicrodxError(f"finetune: epochs={epochs} must be an integer >= 1, e.g. finetune:epochs=5")
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool) or not 0 < lr < float("inf"):
            raise MicrodxError(f"finetune: lr={lr} must be a positive number (Adam's step size), e.g. "
                               f"finetune:lr=0.001")
        if not _is_int(batch) or batch < 1:
            raise MicrodxError(f"finetune: batch={batch} must be an integer >= 1 (rows per step), e.g. "
                               f"finetune:batch=64")
        super().__init__(epochs=epochs, lr=lr, batch=batch)
        self.epochs, self.lr, self.batch = int(epochs), float(lr), int(batch)

    def apply(self, graph: Graph, data=None) -> OptimizerResult:
        """`graph` fine-tuned on data = (x, y): x (N, inputs) real values, y (N,) class indices."""
        if data is None:
            raise MicrodxError("finetune needs labelled training data: give --calib TRAIN.npz with a 'y' array of "
                               "class labels (or call apply(graph, data=(x, y)))")
        x, y = retrain_torch.check_data(graph, *data)
        if retrain_torch.available():
            backend = "torch"
            tuned = retrain_torch.finetune(graph, x, y, epochs=self.epochs, lr=self.lr, batch_size=self.batch)
        else:
            backend = "scikit-learn"
            tuned = self._sklearn(graph, x, y)
        before, after = (reference.accuracy(reference.run_float(g, x), y) for g in (graph, tuned))
        rows = [self._row(old, new) for old, new in zip(graph.layers, tuned.layers)]
        notes = [f"finetune: {self.epochs} epochs ({backend}) on {len(x):,} rows, training accuracy "
                 f"{before:.4f} -> {after:.4f}"] + [self.note(r) for r in rows]
        report = self.report(graph, tuned, rows, notes)
        report.update(backend=backend, train_accuracy_before=before, train_accuracy_after=after)
        return OptimizerResult(tuned, report)

    def _sklearn(self, graph: Graph, x: np.ndarray, y: np.ndarray) -> Graph:
        """The fallback without PyTorch: microdx.retrain.finetune_mlp one epoch at a time, projected after each."""
        from microdx.retrain import finetune_mlp

        tuned = graph
        for epoch in range(self.epochs):
            try:
                trained = finetune_mlp(tuned, x, y, epochs=1, seed=epoch, learning_rate=self.lr)
            except MicrodxError as e:
                raise MicrodxError(f"finetune without PyTorch: {e}; to fine-tune this graph install the torch "
                                   f"extra: pip install -e '.[torch]'") from None
            tuned = _project(graph, trained)
        return tuned

    @staticmethod
    def _row(old: Layer, new: Layer) -> dict:
        w0, w = old.tensors["w"], new.tensors["w"]
        return {"layer": old.name, "weights": int(w.size), "zeros_kept": int(np.sum(w0 == 0)),
                "shared_values": int(len(np.unique(w))) if "codebook_bits" in old.attrs else None,
                "relative_change": float(np.linalg.norm(w - w0) / max(float(np.linalg.norm(w0)), 1e-300))}

    def note(self, r: dict) -> str:
        kept = f", {r['zeros_kept']:,} zeros kept" if r["zeros_kept"] else ""
        shared = f", {r['shared_values']} shared values" if r["shared_values"] is not None else ""
        return f"finetune {r['layer']}: weights changed by {r['relative_change']:.3f} (relative){kept}{shared}"
