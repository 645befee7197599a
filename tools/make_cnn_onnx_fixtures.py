"""Train two small PyTorch CNNs on scikit-learn's 8x8 digits and export each with both ONNX exporters, as users do:
the fixtures of tests/test_onnx_cnn.py (tests/fixtures/onnx_cnn/).

- `dw`: Conv 3x3 -> BatchNorm -> ReLU -> depthwise Conv 3x3 stride 2 -> BatchNorm -> ReLU6 -> Conv 1x1 -> ReLU ->
  MaxPool 2 -> Flatten (CHW order) -> Linear. Padding 1 everywhere.
- `gap`: Conv 3x3 (padding 0) -> ReLU -> AvgPool 2 (stride 1, padding 1, count_include_pad=False) -> Conv 3x3 ->
  BatchNorm -> ReLU -> global average pool -> Flatten -> Linear.
- `res`: two residual blocks: h = ReLU(BN(Conv(x))); h = ReLU(h + BN(Conv(h))); h = ReLU(h + Conv(h)) -> MaxPool 2 ->
  Flatten -> Linear (the second block adds the first block's output).

Writes NAME_classic.onnx (torch.onnx.export(dynamo=False, opset 17)) and NAME_dynamo.onnx (dynamo=True); the split
(train_test_split(test_size=0.25, random_state=0, stratify)) is remade by the tests from scikit-learn's copy of the
data. Needs torch (the `torch` extra) and onnxscript. Deterministic for fixed library versions.
Usage: python tools/make_cnn_onnx_fixtures.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "onnx_cnn"


def _nets(torch):
    nn = torch.nn
    dw = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),
                       nn.Conv2d(8, 16, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
    gap = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),
                        nn.Conv2d(8, 12, 3), nn.BatchNorm2d(12), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(12, 10))

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.c3 = nn.Conv2d(8, 8, 3, padding=1)
            self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            h = torch.relu(self.b1(self.c1(x)))
            h = torch.relu(h + self.b2(self.c2(h)))
            h = torch.relu(h + self.c3(h))
            return self.fc(torch.flatten(self.pool(h), 1))

    return {"dw": dw, "gap": gap, "res": Res()}


def main():
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    torch.manual_seed(0)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]          # N, 1, 8, 8
    x_tr, x_te, y_tr, y_te = train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, net in _nets(torch).items():
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        xt, yt = torch.tensor(x_tr), torch.tensor(y_tr)
        for epoch in range(40):
            net.train()
            for i in range(0, len(xt), 64):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(xt[i:i + 64]), yt[i:i + 64])
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            acc = (net(torch.tensor(x_te)).argmax(1).numpy() == y_te).mean()
        example = (torch.zeros(1, 1, 8, 8),)
        torch.onnx.export(net, example, str(OUT / f"{name}_classic.onnx"), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "N"}})
        program = torch.onnx.export(net, example, dynamo=True, input_names=["x"], output_names=["logits"])
        program.save(str(OUT / f"{name}_dynamo.onnx"))
        print(f"{name}: held-out accuracy {acc:.4f} (PyTorch, float)")


if __name__ == "__main__":
    main()
