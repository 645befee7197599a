"""Fine-tuning a compressed MLP on its training data, with scikit-learn (no PyTorch needed).

Structured compression (prune_units) leaves an ordinary MLP: dense layers with ReLU between them and none after the
last. scikit-learn's MLPClassifier can continue training such a network from given weights: `partial_fit` once to
build its internals, replace the weights with the graph's, reset Adam's moments to the new shapes, then one
`partial_fit` per epoch. Factorized (linear bottleneck) or sparse layers are not MLPClassifier-shaped: fine-tune
before applying those.
"""
from __future__ import annotations

import warnings

import numpy as np

from microdx.errors import MicrodxError
from microdx.ir import Graph, Layer


def finetune_mlp(graph: Graph, x: np.ndarray, y: np.ndarray, epochs: int = 10, seed: int = 0,
                 learning_rate: float = 1e-3, alpha: float = 1e-3) -> Graph:
    """`graph` (float dense layers, ReLU on all but the last) trained `epochs` more epochs of Adam on (x, y);
    y holds class indices 0..n_outputs-1. Returns a new graph with the same layer names."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    layers = graph.layers
    if any(layer.kind != "dense" or layer.dtype != "f32" for layer in layers) or \
            any(layer.attrs.get("act") != "relu" for layer in layers[:-1]) or layers[-1].attrs.get("act"):
        raise MicrodxError("finetune_mlp needs float dense layers with ReLU between them and none after the last")
    n_out = layers[-1].tensors["w"].shape[0]
    clf = MLPClassifier(tuple(layer.tensors["w"].shape[0] for layer in layers[:-1]), random_state=seed,
                        alpha=alpha, learning_rate_init=learning_rate, shuffle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit(x[:1], y[:1], classes=np.arange(n_out))        # builds the internals; weights replaced next
        clf.coefs_ = [layer.tensors["w"].T.astype(np.float64) for layer in layers]
        clf.intercepts_ = [layer.tensors["b"].astype(np.float64) for layer in layers]
        params = clf.coefs_ + clf.intercepts_
        clf._optimizer.params = params
        clf._optimizer.ms = [np.zeros_like(p) for p in params]
        clf._optimizer.vs = [np.zeros_like(p) for p in params]
        clf._optimizer.t = 0
        for _ in range(epochs):
            clf.partial_fit(x, y)
    new = [Layer("dense", layer.name, "f32", {"w": w.T.astype(np.float32), "b": b.astype(np.float32)},
                 dict(layer.attrs)) for layer, w, b in zip(layers, clf.coefs_, clf.intercepts_)]
    return graph.copy(layers=new)
