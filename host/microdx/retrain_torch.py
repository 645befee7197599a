"""Fine-tuning of compressed float graphs with PyTorch (the `torch` extra), keeping what compression made.

As in Deep Compression (Han et al., 2016), training continues under the constraints the compression left:
- masks: every weight exactly 0.0 before fine-tuning (pruned) is exactly 0.0 after;
- shared weights: a layer with attrs["codebook_bits"] (made by kmeans) is trained as centroids[index], the index of
  each weight fixed; a centroid's gradient is the sum of its weights' gradients, so the layer keeps at most 2^bits
  values and its grouping. A centroid that is exactly 0.0 counts as pruned and stays 0.0.
Everything else (biases, the other weights) trains freely: cross-entropy on the last layer's outputs (the logits),
Adam, a seeded shuffle.
"""
from __future__ import annotations

import sys

import numpy as np

from microdx.errors import InputShapeError, MicrodxError
from microdx.ir import Graph, Layer

MAX_THREADS = 2   # small models: more threads cost more in overhead than they gain, and leave the machine usable


def available() -> bool:
    """True if PyTorch can be imported (pip install -e '.[torch]')."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def check_data(graph: Graph, x, y) -> tuple[np.ndarray, np.ndarray]:
    """(x as float32, y as int64 class indices), or MicrodxError saying what to fix: the graph must be float dense
    layers, x (N, inputs) real values, y N class indices 0..outputs-1."""
    for layer in graph.layers:
        if layer.kind != "dense" or layer.dtype != "f32":
            raise MicrodxError(f"finetune trains float dense layers; layer '{layer.name}' is {layer.kind} "
                               f"({layer.dtype}): fine-tune the float graph after the clean pass and before int8 "
                               f"quantization (in a recipe, finetune runs there)")
    x, y = np.asarray(x), np.asarray(y)
    n_in, n_out = graph.layers[0].tensors["w"].shape[1], graph.layers[-1].tensors["w"].shape[0]
    if x.ndim != 2 or x.shape[1] != n_in:
        raise InputShapeError(f"finetune: x has shape {x.shape}; the model expects (N, {n_in}) real values")
    if y.shape != (len(x),):
        raise MicrodxError(f"finetune: y has shape {y.shape} but x has {len(x)} rows; give one class index per row")
    if y.dtype.kind not in "iu":
        raise MicrodxError(f"finetune: y has dtype {y.dtype}; give class indices 0..{n_out - 1} (integers)")
    bad = np.flatnonzero((y < 0) | (y >= n_out))
    if bad.size:
        raise MicrodxError(f"finetune: y[{bad[0]}] = {y[bad[0]]} is not a class index of this model "
                           f"(0..{n_out - 1}; {bad.size} of {len(y)} rows); map labels to indices first "
                           f"(microdx.data.class_indices)")
    return x.astype(np.float32), y.astype(np.int64)


class _Weights:
    """One layer's weight as trainable tensors: free with a mask of its zeros, or centroids[index] (shared)."""

    def __init__(self, torch, w: np.ndarray, shared: bool):
        self.shared = shared
        if shared:
            values, index = np.unique(w, return_inverse=True)
            self.index = torch.as_tensor(index.reshape(w.shape), dtype=torch.long)
            self.param = torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))
        else:
            self.param = torch.nn.Parameter(torch.tensor(w, dtype=torch.float32))   # a copy: the input graph stays
        self.zero = self.param.detach() == 0      # the pruned weights, or the pruned centroid

    def matrix(self):
        return self.param[self.index] if self.shared else self.param

    def project(self):
        """Put pruned entries back to exactly 0.0. Adam updates each entry on its own, so resetting after the step
        is exact and leaves every other entry's update as it was."""
        self.param.masked_fill_(self.zero, 0.0)


def finetune(graph: Graph, x, y, epochs: int = 5, lr: float = 1e-3, batch_size: int = 64, seed: int = 0,
             progress=None) -> Graph:
    """`graph` (float dense layers) trained `epochs` more epochs on (x, y) under its masks and shared weights (see
    the module docstring). x: (N, inputs) real values; y: (N,) class indices; lr: Adam's step size; batch_size: rows
    per step. Deterministic for a given seed. Returns a new Graph (same layer names and attrs, float32 tensors)."""
    import torch
    from tqdm import tqdm

    x, y = check_data(graph, x, y)
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, MAX_THREADS))
    try:
        torch.manual_seed(seed)
        weights = [_Weights(torch, layer.tensors["w"], "codebook_bits" in layer.attrs) for layer in graph.layers]
        biases = [torch.nn.Parameter(torch.tensor(layer.tensors["b"], dtype=torch.float32))
                  for layer in graph.layers]
        relu = [layer.attrs.get("act") == "relu" for layer in graph.layers]
        opt = torch.optim.Adam([w.param for w in weights] + biases, lr=lr)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        order = torch.Generator().manual_seed(seed)
        for _ in tqdm(range(epochs), desc="finetune", unit="epoch", file=sys.stderr, disable=not progress,
                      leave=False):
            for rows in torch.randperm(len(xt), generator=order).split(batch_size):
                h = xt[rows]
                for w, b, r in zip(weights, biases, relu):
                    h = h @ w.matrix().T + b
                    if r:
                        h = torch.relu(h)
                loss = torch.nn.functional.cross_entropy(h, yt[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for w in weights:
                        w.project()
        with torch.no_grad():
            layers = [Layer(layer.kind, layer.name, layer.dtype,
                            {**layer.tensors, "w": w.matrix().detach().numpy().copy(),
                             "b": b.detach().numpy().copy()}, dict(layer.attrs))
                      for layer, w, b in zip(graph.layers, weights, biases)]
    finally:
        torch.set_num_threads(threads)
    return graph.copy(layers=layers)
