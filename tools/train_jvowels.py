"""Train the bundled speaker-jvowels model: a small PyTorch MLP 120-64-32-9 (ReLU) for 9-speaker speaker ID on
JapaneseVowels (sktime 1.2.0 wheel, standard split 270 train / 370 test; features from
microdx.datasets.japanese_vowels.features: 8 resampled frames of 12 LPC cepstra, plus their mean and std).

The training set's per-feature standardization is folded exactly into the first layer, so the exported
models/speaker-jvowels/mlp.onnx (torch.onnx.export, dynamo=False: Gemm and Relu only) takes the raw features the
loader gives. Also writes test.npz (x float32 raw features, y int64), calib.npz (the 270 training rows),
labels.txt and train.json (data, split, seed, epochs, architecture, params, MACs, float test accuracy measured
with onnxruntime on the exported file).

Seeded and deterministic (CPU, one thread): about 10 s on one CPU core.
    python tools/train_jvowels.py --out models/ --seed 0
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import training
from microdx.datasets import japanese_vowels

HIDDEN = (64, 32)
EPOCHS = 300
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4
LABELS = [f"speaker{i + 1}" for i in range(9)]


def raw_split():
    """(x_train, y_train, x_test, y_test): raw (unstandardized) features, float64, and class indices 0..8."""
    d = japanese_vowels.data_dir()
    s_tr, y_tr = japanese_vowels.read_ts(d / "JapaneseVowels_TRAIN.ts")
    s_te, y_te = japanese_vowels.read_ts(d / "JapaneseVowels_TEST.ts")
    return japanese_vowels.features(s_tr), y_tr, japanese_vowels.features(s_te), y_te


def mlp(n_in, n_out):
    layers, prev = [], n_in
    for h in HIDDEN:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    return nn.Sequential(*layers, nn.Linear(prev, n_out))


def train(model, x, y, seed):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for _ in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            xb = xt[idx] + 0.05 * torch.randn(len(idx), xt.shape[1], generator=g)   # noise on standardized inputs
            opt.zero_grad()
            loss_fn(model(xb), yt[idx]).backward()
            opt.step()
        sched.step()
    return model.eval()


def fold_standardization(model, mu, sd):
    """First Linear so that it takes raw x: W' = W / sd (per input column), b' = b - W' @ mu (float64, exact)."""
    first = model[0]
    w = first.weight.detach().double()
    w2 = w / torch.tensor(sd)[None, :]
    b2 = first.bias.detach().double() - w2 @ torch.tensor(mu)
    with torch.no_grad():
        first.weight.copy_(w2.float())
        first.bias.copy_(b2.float())
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/", help="folder to write speaker-jvowels/ into (default models/)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)

    x_tr, y_tr, x_te, y_te = raw_split()
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-8
    model = train(mlp(x_tr.shape[1], len(LABELS)), (x_tr - mu) / sd, y_tr, a.seed)
    with torch.no_grad():
        torch_acc = float((model(torch.tensor((x_te - mu) / sd, dtype=torch.float32)).argmax(1).numpy()
                           == y_te).mean())
    fold_standardization(model, mu, sd)

    out = Path(a.out) / "speaker-jvowels"
    out.mkdir(parents=True, exist_ok=True)
    ops = training.export_onnx(torch, model, torch.zeros(1, x_tr.shape[1]), out / "mlp.onnx", "speaker_jvowels",
                               LABELS)
    acc = float((training.ort_logits(out / "mlp.onnx", x_te).argmax(1) == y_te).mean())
    np.savez_compressed(out / "test.npz", x=x_te.astype(np.float32), y=y_te.astype(np.int64))
    np.savez_compressed(out / "calib.npz", x=x_tr.astype(np.float32), y=y_tr.astype(np.int64))
    (out / "labels.txt").write_text("\n".join(LABELS) + "\n")

    sizes = [x_tr.shape[1], *HIDDEN, len(LABELS)]
    params = sum(p.numel() for p in model.parameters())
    macs = sum(i * o for i, o in zip(sizes, sizes[1:]))
    report = {
        "model": "speaker-jvowels", "task": "speaker identification, 9 male speakers saying /ae/",
        "data": "JapaneseVowels (UCI) from the sktime 1.2.0 wheel: sktime/datasets/data/JapaneseVowels/"
                "JapaneseVowels_TRAIN.ts and _TEST.ts, read by microdx.datasets.japanese_vowels",
        "features": f"{japanese_vowels.FRAMES} frames (linearly resampled) x 12 LPC cepstra, then the 12 per-"
                    f"coefficient means and 12 stds over the utterance: 120 raw values; the training set's "
                    f"standardization is folded into the first Gemm",
        "split": "standard (UCI / sktime)", "train_rows": int(len(x_tr)), "test_rows": int(len(x_te)),
        "calib_rows": int(len(x_tr)), "seed": a.seed, "epochs": EPOCHS, "batch": BATCH,
        "optimizer": f"Adam lr {LR} cosine, weight decay {WEIGHT_DECAY}, label smoothing 0.05, input noise 0.05",
        "architecture": "MLP " + "-".join(str(s) for s in sizes) + " (ReLU)", "onnx_ops": ops,
        "params": int(params), "macs": int(macs),
        "float_test_accuracy": acc, "float_test_accuracy_measured_with": "onnxruntime on mlp.onnx, test.npz",
        "torch_test_accuracy_before_fold": torch_acc,
        "torch": torch.__version__, "train_seconds": round(time.time() - t0, 1),
    }
    (out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
