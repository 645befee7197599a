"""Train the bundled har-watch model: exercise recognition (7 shoulder exercises) from a smartwatch's 6-axis IMU
(seglearn 1.2.5's watch dataset, read by microdx.datasets.watch without importing seglearn), subject-independent.

Each recording is cut into 2 s windows (100 samples at 50 Hz, 50 % overlap); a seeded 3 of the 10 subjects are
held out as the test set. Two candidates are trained in PyTorch (seeded, deterministic, one thread):

  cnn  the raw window, ONNX input (N, 6, 100, 1) NCHW (channels = ax ay az wx wy wz, H = time): three Conv (5x1)
       + BatchNormalization + Relu blocks with MaxPool, GlobalAveragePool, Flatten, Gemm. microdx holds the
       input as (H, W, C) = (100, 1, 6), so a data row is the window (100, 6) flattened time-major: 600 raw values.
       The training set's per-channel standardization is folded exactly into the first conv (VALID padding).
  mlp  40 hand features per window (mean, std, min, max, mean square of the 6 axes and of the accelerometer and
       gyroscope magnitudes) into an MLP 40-64-32-7, standardization folded into the first Gemm.

The kind is chosen on validation subjects (a seeded 2 of the 7 training subjects; never the test subjects), then
both are retrained on all training subjects and evaluated on the test subjects (both reported in train.json); the
chosen one is exported as models/har-watch/model.onnx (torch.onnx.export, dynamo=False) with test.npz (x float32
rows as the model takes them, y int64, subject), calib.npz (300 training rows), labels.txt and train.json (float
test accuracy measured with onnxruntime on the exported file, confusion matrix, per-class counts).

A third model, models/har-watch/tiny.onnx, is trained after the chosen one is exported (it does not change model.onnx,
test.npz or calib.npz): a dense-only net (Gemm + Relu, no Conv, for a microcontroller's 32 KB heap, where the conv
and pool kernels alone take ~11 KB) on the same 600-value rows, 600-16-16-7 by default (--tiny-hidden), trained on
all training subjects with time-shift (each window's start moved by up to +-50 samples within its recording) and
amplitude (x U(0.9, 1.1) per window and channel) augmentation, the training set's per-channel standardization folded
exactly into the first Gemm; its onnxruntime test accuracy goes in train.json under "tiny".

About 1 minute on one CPU core.
    python tools/train_har.py --data /path/to/seglearn-1.2.5-py3-none-any.whl --out models/ --seed 0
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
from microdx.datasets import watch

WINDOW = 100          # samples (2 s at 50 Hz)
STEP = 50             # 50 % overlap
TEST_SUBJECTS = 3
VAL_SUBJECTS = 2
CALIB_ROWS = 128      # int8 calibration rows committed (calib.npz): 600 float32 values each
CHANNELS = 16
EPOCHS = {"cnn": 20, "mlp": 40}
TINY_HIDDEN = (16, 16)  # dense hidden sizes: 600*16 + 16*16 + 16*7 weights ~ 10 KB as int8
TINY_EPOCHS = 150
TINY_SHIFT = 50         # training windows' starts moved by a uniform -50..50 samples (clipped to the recording)
TINY_SCALE = 0.1        # training windows' channels scaled by U(1 - 0.1, 1 + 0.1)
BATCH = 64
LR = 3e-3
WEIGHT_DECAY = 1e-4


def window_index(rec: np.ndarray) -> np.ndarray:
    """Each window's position within its recording (0, 1, ...), for windows ordered recording by recording."""
    start = np.r_[0, np.flatnonzero(np.diff(rec)) + 1]
    return np.arange(len(rec)) - np.repeat(start, np.diff(np.r_[start, len(rec)]))


def windowed(d):
    """(x (N, WINDOW, 6) float32, y (N,), subject (N,), recording (N,)) over every recording."""
    xs, ys, subs, recs = [], [], [], []
    for i, (s, y, sub) in enumerate(zip(d["X"], d["y"], d["subject"])):
        w = watch.windows(s, WINDOW, STEP)
        xs.append(w)
        ys += [y] * len(w)
        subs += [sub] * len(w)
        recs += [i] * len(w)
    return np.concatenate(xs).astype(np.float32), np.array(ys), np.array(subs), np.array(recs)


def hand_features(x):
    """40 features per window: mean, std, min, max, mean square of ax ay az wx wy wz |a| |w|."""
    z = np.concatenate([x, np.linalg.norm(x[:, :, :3], axis=2, keepdims=True),
                        np.linalg.norm(x[:, :, 3:], axis=2, keepdims=True)], axis=2).astype(np.float64)
    return np.concatenate([z.mean(1), z.std(1), z.min(1), z.max(1), (z * z).mean(1)], axis=1)


def cnn(n_out, c=CHANNELS):
    return nn.Sequential(
        nn.Conv2d(6, c, (5, 1)), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d((2, 1)),
        nn.Conv2d(c, 2 * c, (5, 1), padding=(2, 0)), nn.BatchNorm2d(2 * c), nn.ReLU(), nn.MaxPool2d((2, 1)),
        nn.Conv2d(2 * c, 2 * c, (5, 1), padding=(2, 0)), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, n_out))


def mlp(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, n_out))


class Candidate:
    """One kind (cnn / mlp): its inputs, standardization, and the model trained on given rows."""

    def __init__(self, kind, x):
        self.kind = kind
        self.inputs = x if kind == "cnn" else hand_features(x)   # (N, 100, 6) windows or (N, 40) features

    def standardize(self, rows):
        axes = (0, 1) if self.kind == "cnn" else 0
        self.mu = self.inputs[rows].astype(np.float64).mean(axes)
        self.sd = self.inputs[rows].astype(np.float64).std(axes) + 1e-8

    def tensor(self, rows):
        z = (self.inputs[rows] - self.mu) / self.sd
        if self.kind == "cnn":
            z = z.transpose(0, 2, 1)[:, :, :, None]           # (N, 6, 100, 1)
        return torch.tensor(z, dtype=torch.float32)

    def fit(self, rows, y, seed, n_out):
        torch.manual_seed(seed)
        self.standardize(rows)
        self.model = cnn(n_out) if self.kind == "cnn" else mlp(self.inputs.shape[1], n_out)
        g = torch.Generator().manual_seed(seed)
        epochs = EPOCHS[self.kind]
        opt = torch.optim.Adam(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        xt, yt = self.tensor(rows), torch.tensor(y[rows], dtype=torch.int64)
        for _ in range(epochs):
            training.epoch(torch, self.model, opt, xt, yt, g, BATCH, label_smoothing=0.05)
            sched.step()
        self.model.eval()
        return self

    def predict(self, rows):
        with torch.no_grad():
            return self.model(self.tensor(rows)).argmax(1).numpy()

    def fold(self):
        """Fold (x - mu) / sd into the first layer so the model takes raw values (exact: the first conv is VALID)."""
        first = self.model[0]
        w = first.weight.detach().double()
        sd, mu = torch.tensor(self.sd), torch.tensor(self.mu)
        if self.kind == "cnn":                                   # w (O, 6, 5, 1): per input channel
            w2 = w / sd[None, :, None, None]
            b2 = first.bias.detach().double() - (w2 * mu[None, :, None, None]).sum((1, 2, 3))
        else:
            w2 = w / sd[None, :]
            b2 = first.bias.detach().double() - w2 @ mu
        with torch.no_grad():
            first.weight.copy_(w2.float())
            first.bias.copy_(b2.float())

    def rows_of(self, rows):
        """Data rows as microdx and test.npz take them: (N, 600) window time-major, or (N, 40) features."""
        return self.inputs[rows].reshape(len(rows), -1).astype(np.float32)

    def onnx_input(self, data_rows):
        if self.kind == "cnn":
            return data_rows.reshape(len(data_rows), WINDOW, 1, 6).transpose(0, 3, 1, 2).copy()
        return data_rows

    def example(self):
        return torch.zeros(1, 6, WINDOW, 1) if self.kind == "cnn" else torch.zeros(1, self.inputs.shape[1])


class Tiny:
    """The dense-only variant: Linear/ReLU stack on the raw (100, 6) window flattened time-major (600 values)."""

    kind = "tiny"

    def __init__(self, x, series, rec, hidden=TINY_HIDDEN):
        self.x, self.series, self.rec, self.hidden = x, series, rec, tuple(hidden)
        self.start = window_index(rec) * STEP                    # each window's first sample in its recording

    def crops(self, rows, gen):
        """Training windows with augmentation: start shifted by up to TINY_SHIFT, channels scaled by ~1 +- SCALE."""
        lens = np.array([len(self.series[r]) for r in self.rec[rows]])
        st = np.clip(self.start[rows] + gen.integers(-TINY_SHIFT, TINY_SHIFT + 1, len(rows)), 0, lens - WINDOW)
        w = np.stack([self.series[r][s:s + WINDOW] for r, s in zip(self.rec[rows], st)]).astype(np.float32)
        return w * gen.uniform(1 - TINY_SCALE, 1 + TINY_SCALE, (len(rows), 1, w.shape[2])).astype(np.float32)

    def tensor(self, w):
        return torch.tensor(((w - self.mu) / self.sd).reshape(len(w), -1), dtype=torch.float32)

    def fit(self, rows, y, seed, n_out):
        torch.manual_seed(seed)
        self.mu = self.x[rows].astype(np.float64).mean((0, 1))
        self.sd = self.x[rows].astype(np.float64).std((0, 1)) + 1e-8
        layers, n = [], WINDOW * self.x.shape[2]
        for h in self.hidden:
            layers += [nn.Linear(n, h), nn.ReLU()]
            n = h
        self.model = nn.Sequential(*layers, nn.Linear(n, n_out))
        g = torch.Generator().manual_seed(seed)
        aug = np.random.default_rng(seed)
        opt = torch.optim.Adam(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, TINY_EPOCHS)
        yt = torch.tensor(y[rows], dtype=torch.int64)
        for _ in range(TINY_EPOCHS):
            training.epoch(torch, self.model, opt, self.tensor(self.crops(rows, aug)), yt, g, BATCH,
                           label_smoothing=0.05)
            sched.step()
        self.model.eval()
        return self

    def predict(self, rows):
        with torch.no_grad():
            return self.model(self.tensor(self.x[rows])).argmax(1).numpy()

    def fold(self):
        """Fold (x - mu) / sd into the first Gemm (exact): row index t * 6 + c takes channel c's mu, sd."""
        first = self.model[0]
        sd = torch.tensor(np.tile(self.sd, WINDOW))
        mu = torch.tensor(np.tile(self.mu, WINDOW))
        w2 = first.weight.detach().double() / sd[None, :]
        b2 = first.bias.detach().double() - w2 @ mu
        with torch.no_grad():
            first.weight.copy_(w2.float())
            first.bias.copy_(b2.float())

    def example(self):
        return torch.zeros(1, WINDOW * self.x.shape[2])

    def describe(self, n_out):
        sizes = "-".join(str(k) for k in (WINDOW * self.x.shape[2], *self.hidden, n_out))
        return (f"dense MLP {sizes} (Gemm + Relu only) on the raw window flattened time-major; trained with "
                f"time-shift (+-{TINY_SHIFT} samples) and amplitude (x U({1 - TINY_SCALE:g}, {1 + TINY_SCALE:g}) "
                f"per channel) augmentation")


def count_macs(model, example):
    """Multiply-accumulates of the Conv2d and Linear layers for one input."""
    total = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total.append(out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0]
                         * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            total.append(m.in_features * m.out_features)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(example)
    for h in hs:
        h.remove()
    return int(sum(total))


def export(cand, path, labels, name="har_watch"):
    return training.export_onnx(torch, cand.model, cand.example(), path, name, labels)


def ort_predict(path, x):
    return training.ort_logits(path, x).argmax(1)


def describe(kind, n_out):
    if kind == "cnn":
        c = CHANNELS
        return (f"CNN on (6, {WINDOW}, 1): Conv 6->{c} (5x1, VALID) BN ReLU MaxPool(2x1), Conv {c}->{2 * c} (5x1, "
                f"pad 2) BN ReLU MaxPool(2x1), Conv {2 * c}->{2 * c} (5x1, pad 2) BN ReLU, GlobalAveragePool, "
                f"Flatten, Gemm {2 * c}->{n_out}")
    return f"MLP 40-64-32-{n_out} (ReLU) on hand features"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="watch_dataset.npy or the seglearn 1.2.5 wheel (default: beside an "
                                                 "installed seglearn)")
    ap.add_argument("--out", default="models/", help="folder to write har-watch/ into (default models/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", choices=["auto", "cnn", "mlp"], default="auto",
                    help="auto: choose on the validation subjects (default)")
    ap.add_argument("--tiny-hidden", default=",".join(map(str, TINY_HIDDEN)),
                    help="hidden sizes of the dense tiny.onnx, comma-separated (default %(default)s)")
    a = ap.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    d = watch.load(a.data)
    labels = d["y_labels"]
    n_out = len(labels)
    x, y, subject, rec = windowed(d)
    rng = np.random.default_rng(a.seed)
    subjects = np.unique(subject)
    test_subjects = np.sort(rng.choice(subjects, TEST_SUBJECTS, replace=False))
    train_subjects = np.setdiff1d(subjects, test_subjects)
    val_subjects = np.sort(rng.choice(train_subjects, VAL_SUBJECTS, replace=False))
    tr = np.flatnonzero(~np.isin(subject, test_subjects))
    # test windows do not overlap (every other 50%-overlap window of each recording): each second of a test
    # recording is scored once, and the committed test.npz is half the size
    te = np.flatnonzero(np.isin(subject, test_subjects) & (window_index(rec) % 2 == 0))
    fit_rows = np.flatnonzero(np.isin(subject, np.setdiff1d(train_subjects, val_subjects)))
    val_rows = np.flatnonzero(np.isin(subject, val_subjects))
    print(f"{len(x)} windows; test subjects {test_subjects.tolist()}, validation subjects {val_subjects.tolist()}",
          flush=True)

    kinds = ["cnn", "mlp"]
    cands = {k: Candidate(k, x) for k in kinds}
    val_acc, test_acc, seconds = {}, {}, {}
    for k in kinds:
        t = time.time()
        val_acc[k] = float((cands[k].fit(fit_rows, y, a.seed, n_out).predict(val_rows) == y[val_rows]).mean())
        print(f"{k}: validation accuracy {val_acc[k]:.4f} ({time.time() - t:.0f} s)", flush=True)
    chosen = max(kinds, key=lambda k: val_acc[k]) if a.kind == "auto" else a.kind
    finals = {}
    for k in kinds:
        t = time.time()
        finals[k] = Candidate(k, x).fit(tr, y, a.seed, n_out)
        seconds[k] = round(time.time() - t, 1)
        test_acc[k] = float((finals[k].predict(te) == y[te]).mean())
        print(f"{k}: trained on all training subjects, test accuracy (torch) {test_acc[k]:.4f} ({seconds[k]} s)",
              flush=True)

    best = finals[chosen]
    best.fold()
    out = Path(a.out) / "har-watch"
    out.mkdir(parents=True, exist_ok=True)
    ops = export(best, out / "model.onnx", labels)
    x_te = best.rows_of(te)
    pred = ort_predict(out / "model.onnx", best.onnx_input(x_te))
    acc = float((pred == y[te]).mean())
    conf = np.zeros((n_out, n_out), dtype=int)
    np.add.at(conf, (y[te], pred), 1)
    calib = np.sort(np.random.default_rng(a.seed + 1).choice(tr, min(CALIB_ROWS, len(tr)), replace=False))
    np.savez_compressed(out / "test.npz", x=x_te, y=y[te].astype(np.int64), subject=subject[te].astype(np.int64))
    np.savez_compressed(out / "calib.npz", x=best.rows_of(calib), y=y[calib].astype(np.int64))
    (out / "labels.txt").write_text("\n".join(labels) + "\n")

    t = time.time()
    tiny = Tiny(x, d["X"], rec, [int(k) for k in a.tiny_hidden.split(",")]).fit(tr, y, a.seed, n_out)
    tiny_seconds = round(time.time() - t, 1)
    tiny_torch = float((tiny.predict(te) == y[te]).mean())
    tiny.fold()
    tiny_ops = export(tiny, out / "tiny.onnx", labels, name="har_watch_tiny")
    tiny_pred = ort_predict(out / "tiny.onnx", x_te)
    tiny_acc = float((tiny_pred == y[te]).mean())
    tiny_conf = np.zeros((n_out, n_out), dtype=int)
    np.add.at(tiny_conf, (y[te], tiny_pred), 1)
    print(f"tiny: test accuracy (onnxruntime) {tiny_acc:.4f} ({tiny_seconds} s)", flush=True)

    per_subject = {int(s): float((pred[subject[te] == s] == y[te][subject[te] == s]).mean()) for s in test_subjects}
    report = {
        "model": "har-watch", "task": "shoulder-exercise recognition (7 classes) from a smartwatch's 6-axis IMU, "
                                      "subject-independent",
        "data": f"seglearn 1.2.5 watch_dataset.npy (read from {Path(d['path']).name}; Burns et al., "
                f"arXiv:1802.01489): 140 recordings, "
                f"10 subjects x 7 exercises x 2 arms, channels {d['X_labels']}, 50 Hz",
        "window_samples": WINDOW, "window_s": WINDOW / watch.RATE_HZ, "step_samples": STEP,
        "test_step_samples": 2 * STEP,
        "overlap": 1 - STEP / WINDOW, "windows": int(len(x)),
        "split": "by subject", "test_subjects": test_subjects.tolist(), "train_subjects": train_subjects.tolist(),
        "validation_subjects (model choice only, inside train)": val_subjects.tolist(),
        "train_rows": int(len(tr)), "test_rows": int(len(te)), "calib_rows": int(len(calib)),
        "per_class_counts": {"train": dict(zip(labels, np.bincount(y[tr], minlength=n_out).tolist())),
                             "test": dict(zip(labels, np.bincount(y[te], minlength=n_out).tolist()))},
        "seed": a.seed, "kind": chosen, "chosen_by": "validation accuracy" if a.kind == "auto" else "--kind",
        "candidates": {k: {"architecture": describe(k, n_out), "epochs": EPOCHS[k],
                           "params": int(sum(p.numel() for p in finals[k].model.parameters())),
                           "macs": count_macs(finals[k].model, finals[k].example()),
                           "validation_accuracy": val_acc[k], "test_accuracy_torch": test_acc[k],
                           "train_seconds": seconds[k]} for k in kinds},
        "architecture": describe(chosen, n_out), "onnx_ops": ops,
        "input": ("rows of 600 raw values: the (100, 6) window flattened time-major (ax ay az wx wy wz per sample); "
                  "ONNX input (N, 6, 100, 1) = rows.reshape(N, 100, 1, 6).transpose(0, 3, 1, 2)") if chosen == "cnn"
        else "rows of 40 hand features (see hand_features in tools/train_har.py)",
        "normalization": "training set's per-channel mean/std folded into the first layer (model takes raw values)",
        "epochs": EPOCHS[chosen], "batch": BATCH,
        "optimizer": f"Adam lr {LR} cosine, weight decay {WEIGHT_DECAY}, label smoothing 0.05",
        "params": int(sum(p.numel() for p in best.model.parameters())),
        "macs": count_macs(best.model, best.example()),
        "float_test_accuracy": acc, "float_test_accuracy_measured_with": "onnxruntime on model.onnx, test.npz",
        "per_subject_test_accuracy": per_subject,
        "confusion_matrix": {"rows": "true class", "columns": "predicted class", "labels": labels,
                             "counts": conf.tolist()},
        "tiny": {
            "file": "tiny.onnx", "architecture": tiny.describe(n_out), "onnx_ops": tiny_ops,
            "input": "the same rows as model.onnx: 600 raw values, the (100, 6) window flattened time-major; ONNX "
                     "input (N, 600)",
            "normalization": "training set's per-channel mean/std (tiled over the 100 samples) folded exactly into "
                             "the first Gemm",
            "train_subjects": train_subjects.tolist(), "epochs": TINY_EPOCHS, "batch": BATCH,
            "optimizer": f"Adam lr {LR} cosine, weight decay {WEIGHT_DECAY}, label smoothing 0.05",
            "augmentation": {"time_shift_samples": TINY_SHIFT, "amplitude_scale": TINY_SCALE},
            "params": int(sum(p.numel() for p in tiny.model.parameters())),
            "macs": count_macs(tiny.model, tiny.example()),
            "test_accuracy_torch": tiny_torch,
            "float_test_accuracy": tiny_acc, "float_test_accuracy_measured_with": "onnxruntime on tiny.onnx, test.npz",
            "per_subject_test_accuracy": {int(s): float((tiny_pred[subject[te] == s] == y[te][subject[te] == s])
                                                        .mean()) for s in test_subjects},
            "confusion_matrix": tiny_conf.tolist(),
            "train_seconds": tiny_seconds,
        },
        "torch": torch.__version__, "train_seconds": round(time.time() - t0, 1),
    }
    (out / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("kind", "test_subjects", "params", "macs", "float_test_accuracy",
                                             "per_subject_test_accuracy", "train_seconds")}))


if __name__ == "__main__":
    main()
