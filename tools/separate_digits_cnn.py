"""Convolution separation on a small trained CNN: scikit-learn's 8x8 digits, a CNN trained here with PyTorch
(the torch extra), then `separate` at several kept energies: MACs, weights, float and int8 held-out accuracy.
The table in docs/optimizers.md comes from `python tools/separate_digits_cnn.py`.

Network (HWC, padding 1): conv 3x3 1->16, ReLU, conv 3x3 16->32 stride 2, ReLU, flatten, dense 512->10.
Split: 70/30 stratified, random_state 0; 40 epochs of Adam (lr 3e-3, batch 64, seed 0).
"""
import argparse
import json

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from microdx import reference
from microdx.ir import canonicalize
from microdx.optimizers import get
from microdx.optimizers.base import graph_macs, weight_bytes
from microdx.quantize import quantize_graph


def train(x_tr, y_tr, epochs=40, seed=0):
    """The CNN's weights as microdx ops (OHWI convs, a dense layer reading HWC), trained in PyTorch (NCHW)."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt = torch.tensor(x_tr.transpose(0, 3, 1, 2), dtype=torch.float32)
    yt = torch.tensor(y_tr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(xt), generator=gen).split(64):
            loss = torch.nn.functional.cross_entropy(net(xt[rows]), yt[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    c1, c2, fc = (net[i] for i in (0, 2, 5))

    def ohwi(conv):
        return conv.weight.detach().numpy().transpose(0, 2, 3, 1)

    # PyTorch flattens CHW; the device's buffer is HWC: permute the dense layer's inputs to match
    w_fc = fc.weight.detach().numpy().reshape(10, 32, 4, 4).transpose(0, 2, 3, 1).reshape(10, -1)
    return [("conv2d", "conv1", {"w": ohwi(c1), "b": c1.bias.detach().numpy(), "pad": np.array([1, 1, 1, 1])}),
            ("relu", "r1", {}),
            ("conv2d", "conv2", {"w": ohwi(c2), "b": c2.bias.detach().numpy(), "stride": np.array([2, 2]),
                                 "pad": np.array([1, 1, 1, 1])}),
            ("relu", "r2", {}), ("flatten", "f", {}),
            ("dense", "fc", {"w": w_fc, "b": fc.bias.detach().numpy()})]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--energies", type=float, nargs="+", default=[0.99, 0.95, 0.9, 0.8, 0.7])
    a = ap.parse_args()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    g = canonicalize("digits_cnn", (8, 8, 1), train(x_tr, y_tr))

    def row(recipe, graph):
        q, _ = quantize_graph(graph, x_tr[::3])
        return {"recipe": recipe, "macs": graph_macs(graph), "float32_weight_bytes": weight_bytes(graph),
                "float_accuracy": reference.accuracy(reference.run_float(graph, x_te), y_te),
                "int8_accuracy": reference.accuracy(reference.run(q, reference.prepare_input(q, x_te)), y_te)}

    print(json.dumps(row("", g)))
    for e in a.energies:
        r = get("separate", energy=e).apply(g)
        out = row(f"separate:energy={e}", r.graph)
        out["ranks"] = {x["layer"]: (x["rank"] if "skipped" not in x else "kept") for x in r.report["layers"]}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
