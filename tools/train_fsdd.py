"""Train the float models bundled for the Free Spoken Digit Dataset (FSDD) and export them to ONNX.

Needs the `torch` extra (`pip install -e '.[torch]'`, CPU build of PyTorch) plus onnx and onnxruntime; tqdm for the
progress bar. Everything runs on one CPU thread, seeded and deterministic.

What it trains (features: exactly the device's integer MFCC front-end, microdx.features.fixed_mfcc.frames_int with
Params() = 8 kHz, frame 200, hop 80, 26 mels, 13 MFCCs, 50 frames; model input x = c.reshape(-1) / 256, 650 floats
frame-major, index = frame * 13 + coefficient; split: takes 0-4 of every speaker and digit test (300 clips), takes
5-49 train (2,700)):

- models/kws-digits/dnn.onnx     digits 0-9, Deep-KWS style DNN 650-128-128-128-10 (ReLU); input (N, 650) = x.
- models/kws-digits/dscnn.onnx   digits 0-9, depthwise-separable CNN over time, MFCC coefficients as channels:
      ONNX input (N, 13, 50, 1) NCHW; a row x (650) becomes it as x.reshape(50, 13).T.reshape(13, 50, 1).
      microdx imports NCHW as HWC = (50, 1, 13), whose row-major flattening is x itself: the .npz files hold the
      650-value rows x for both models (`microdx convert dscnn.onnx --calib calib.npz`, `microdx eval`).
      Conv (3,1) 13->C VALID, then blocks [depthwise (3,1) pad (1,0), pointwise 1x1], MaxPool (2,1) after the
      first block, GlobalAveragePool, Flatten, Gemm C->10.
- models/speaker-fsdd/mlp.onnx   6 speakers (index in sorted name order), DXTK SpeakerID MLP 650-1000-1000-6.

Every exported model takes raw x: the per-coefficient mean/std of the training split is folded exactly into the
first layer (a VALID conv or a dense layer), BatchNorm into its conv; the graphs hold only Conv / Relu / MaxPool /
GlobalAveragePool / Flatten / Gemm (no Dropout, no BatchNormalization). Training augmentation: a random time shift
of every clip by -4..4 frames (speaker MLP: -1..1, with dropout 0.2 on its inputs and 0.5 after its hidden layers)
with zero fill (zero is what the front-end gives for the silence padding a clip). AdamW with a one-cycle schedule.

Per folder it writes test.npz (x float32 (300, 650), y int64, name, speaker, take, digit), calib.npz (300 rows sampled
with the seed from the train split: x, y), labels.txt and train.json (data, split, seed, recipe, params, MACs, float
test accuracy measured with onnxruntime on the exported file and with torch, int8 host accuracy with microdx,
training time). For kws-digits it also runs leave-one-speaker-out (LOSO: train both models on 5 speakers' 2,500
clips, test on the 6th speaker's 500) with fewer epochs, float and int8 host accuracy, into train.json.

Time on one thread of a 2-CPU PC shared with other jobs (measured): features 45-90 s once (then cached in /tmp),
dnn 10-15 s, dscnn 50-100 s, speaker 25 s of training each plus export and int8 checks, LOSO about 4 min (6 folds x
2 models, 30 / 20 epochs): about 7 minutes in all. Use --only NAME (dnn, dscnn, speaker, loso; repeatable) for part.

    python tools/train_fsdd.py [--data /work/shared/data/fsdd] [--out models/] [--only dscnn] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import training

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"
FRAMES, COEFS = 50, 13
NAMES = ("dnn", "dscnn", "speaker", "loso")
SHIFT = 4

# training recipes (epochs for the conventional split; LOSO uses loso_epochs)
RECIPES = {
    "dnn": dict(epochs=60, loso_epochs=30, lr=2e-3, batch=64, weight_decay=1e-4, dropout=0.2),
    "dscnn": dict(epochs=40, loso_epochs=20, lr=3e-3, batch=64, weight_decay=1e-4, channels=64, blocks=4),
    "speaker": dict(epochs=30, lr=1e-3, batch=64, weight_decay=1e-4, dropout=0.5, in_dropout=0.2, shift=1),
}


# ---------------------------------------------------------------- features

def features(data: Path) -> dict:
    """Integer MFCCs of every FSDD clip (c: (N, 50, 13) int32) with digit, speaker, take and file name
    (microdx.datasets.fsdd.int_features, cached in /tmp)."""
    from microdx.datasets import fsdd

    return fsdd.int_features(data, FRAMES)


def rows(c: np.ndarray) -> np.ndarray:
    """Model input rows x (N, 650) float32: frame-major, index = frame * 13 + coefficient."""
    return (c.reshape(len(c), -1) / 256.0).astype(np.float32)


# ---------------------------------------------------------------- models

def build(torch, kind: str, mu, sd, n_out: int, r: dict):
    """Training network: takes (B, 50, 13) raw x, normalizes per coefficient with fixed (mu, sd) buffers."""
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mu", torch.tensor(mu, dtype=torch.float32))
            self.register_buffer("sd", torch.tensor(sd, dtype=torch.float32))
            self.kind = kind
            if kind == "dscnn":
                ch = r["channels"]
                layers = [nn.Conv2d(COEFS, ch, (3, 1)), nn.BatchNorm2d(ch), nn.ReLU()]
                for i in range(r["blocks"]):
                    layers += [nn.Conv2d(ch, ch, (3, 1), padding=(1, 0), groups=ch), nn.BatchNorm2d(ch), nn.ReLU(),
                               nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch), nn.ReLU()]
                    if i == 0:
                        layers.append(nn.MaxPool2d((2, 1)))
                layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, n_out)]
            else:
                sizes = [FRAMES * COEFS] + list(r["hidden"]) + [n_out]
                layers = [nn.Dropout(r["in_dropout"])] if r.get("in_dropout") else []
                for a, b in zip(sizes[:-2], sizes[1:-1]):
                    layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(r["dropout"])] if r["dropout"] else [])
                layers.append(nn.Linear(sizes[-2], sizes[-1]))
            self.body = nn.Sequential(*layers)

        def forward(self, x):
            z = (x - self.mu) / self.sd
            z = z.permute(0, 2, 1).unsqueeze(-1) if self.kind == "dscnn" else z.reshape(len(z), -1)
            return self.body(z)

    return Net()


def folded(torch, net):
    """The export network: normalization folded into the first layer, BatchNorm into its conv, Dropout dropped.
    Input (N, 13, 50, 1) for the CNN, (N, 650) for the dense nets."""
    nn = torch.nn
    mu, sd = net.mu.double(), net.sd.double()
    mods = [m for m in net.body if not isinstance(m, nn.Dropout)]
    out, first = [], True
    i = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w, b = m.weight.detach().double().clone(), m.bias.detach().double().clone()
            if first:   # z = (x - mu) / sd per coefficient: W z + b = (W / sd) x + (b - W (mu / sd))
                if isinstance(m, nn.Conv2d):   # (O, 13, kh, 1), VALID: every tap sees a real input
                    b = b - (w * (mu / sd)[None, :, None, None]).sum(dim=(1, 2, 3))
                    w = w / sd[None, :, None, None]
                else:                          # (O, 650), column f*13 + c
                    mt, st = mu.repeat(FRAMES), sd.repeat(FRAMES)
                    b = b - w @ (mt / st)
                    w = w / st[None, :]
                first = False
            if i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                bn = mods[i + 1]
                s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
                w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
                b = (b - bn.running_mean.double()) * s + bn.bias.detach().double()
                i += 1
            if isinstance(m, nn.Conv2d):
                new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                                groups=m.groups)
            else:
                new = nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                new.weight.copy_(w.float())
                new.bias.copy_(b.float())
            out.append(new)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out.append(nn.AdaptiveAvgPool2d(1))
        else:
            out.append(m)
        i += 1
    return nn.Sequential(*out).eval()


def export_input(kind: str, x: np.ndarray) -> np.ndarray:
    """Rows x (N, 650) as the export network's input tensor."""
    if kind == "dscnn":
        return np.ascontiguousarray(x.reshape(len(x), FRAMES, COEFS).transpose(0, 2, 1)[..., None])
    return x


def count(torch, model, example) -> tuple[int, int]:
    """(parameters, MACs per inference) of the export network: convs, dense layers (pools not counted)."""
    nn = torch.nn
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs.append(out[0].numel() * (m.in_channels // m.groups) * kh * kw)
        else:
            macs.append(m.in_features * m.out_features)

    hs = [m.register_forward_hook(hook) for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.tensor(example[:1]))
    for h in hs:
        h.remove()
    return int(sum(p.numel() for p in model.parameters())), int(sum(macs))


# ---------------------------------------------------------------- training

def shift_batch(torch, xb, gen, shift=SHIFT):
    """Each clip moved by a random -shift..shift frames in time, the frames it leaves filled with zeros."""
    s = torch.randint(-shift, shift + 1, (len(xb),), generator=gen)
    idx = torch.arange(FRAMES)[None, :] - s[:, None]
    valid = ((idx >= 0) & (idx < FRAMES)).to(xb.dtype)
    idx = idx.clamp(0, FRAMES - 1)
    return torch.gather(xb, 1, idx[..., None].expand(-1, -1, COEFS)) * valid[..., None]


def train(torch, kind: str, c_train, y_train, n_out: int, r: dict, epochs: int, seed: int, quiet=False):
    from tqdm import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xr = c_train.astype(np.float32) / 256.0
    mu = xr.mean(axis=(0, 1))
    sd = xr.std(axis=(0, 1)) + 1e-6
    net = build(torch, kind, mu, sd, n_out, r)
    xt, yt = torch.tensor(xr), torch.tensor(y_train, dtype=torch.long)
    opt = torch.optim.AdamW(net.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    steps = epochs * ((len(xt) + r["batch"] - 1) // r["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps, pct_start=0.15)
    bar = tqdm(range(epochs), desc=f"train {kind}", unit="epoch", disable=quiet, leave=False)
    for _ in bar:
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), r["batch"]):
            b = perm[i:i + r["batch"]]
            xb = shift_batch(torch, xt[b], gen, r.get("shift", SHIFT))
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xb), yt[b])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        bar.set_postfix(loss=f"{total / len(xt):.4f}")
    return net.eval()


def export(torch, kind: str, net, path: Path, x_check: np.ndarray, name: str | None = None) -> tuple:
    """Fold, check the folded network against the trained one, export with the classic exporter (opset 17,
    dynamic batch). Returns (export network, max |difference| of logits folded vs trained)."""
    model = folded(torch, net)
    with torch.no_grad():
        a = net(torch.tensor(x_check.reshape(len(x_check), FRAMES, COEFS))).numpy()
        b = model(torch.tensor(export_input(kind, x_check))).numpy()
    diff = float(np.abs(a - b).max())
    if diff > 1e-3 * max(1.0, float(np.abs(a).max())):
        raise SystemExit(f"{kind}: folded network differs from the trained one by {diff}")
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.tensor(export_input(kind, x_check[:1]))
    training.export_onnx(torch, model, example, path, name or "main_graph")   # the blob's model name
    return model, diff


def ort_scores(path: Path, kind: str, x: np.ndarray) -> np.ndarray:
    return training.ort_logits(path, export_input(kind, x))


def int8_accuracy(onnx_path: Path, calib_x, calib_y, x, y) -> tuple[float, int]:
    """microdx int8 (host reference) accuracy and blob bytes, calibrated on (calib_x, calib_y)."""
    from microdx import data, pipeline

    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "m.dxb"
        rep = pipeline.convert(str(onnx_path), str(blob), calib=data.from_arrays(calib_x, calib_y))
        return float(pipeline.evaluate(str(blob), x, y)["accuracy"]), int(rep["blob_bytes"])


def ops_of(path: Path) -> list[str]:
    import onnx

    return sorted({n.op_type for n in onnx.load(str(path)).graph.node})


# ---------------------------------------------------------------- jobs

def write_data(folder: Path, f: dict, y: np.ndarray, labels: list[str], seed: int) -> dict:
    test, tr = f["take"] < 5, f["take"] >= 5
    folder.mkdir(parents=True, exist_ok=True)
    x = rows(f["c"])
    np.savez(folder / "test.npz", x=x[test], y=y[test].astype(np.int64), name=f["name"][test],
             speaker=f["speaker"][test], take=f["take"][test], digit=f["digit"][test])
    pick = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(tr), 300, replace=False))
    np.savez(folder / "calib.npz", x=x[pick], y=y[pick].astype(np.int64))
    (folder / "labels.txt").write_text("".join(f"{s}\n" for s in labels))
    return {"test_rows": int(test.sum()), "calib_rows": 300, "calib_from": "train split, rows sampled without "
            f"replacement with numpy default_rng({seed})"}


def update_json(path: Path, common: dict, name: str, entry: dict) -> None:
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.update(common)
    doc.setdefault("models", {})[name] = {**doc.get("models", {}).get(name, {}), **entry}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def run_model(torch, kind: str, f: dict, y: np.ndarray, n_out: int, folder: Path, file: str, seed: int) -> dict:
    r = RECIPES[kind]
    net_kind = "dscnn" if kind == "dscnn" else "dense"
    if kind == "dnn":
        r = {**r, "hidden": (128, 128, 128)}
    if kind == "speaker":
        r = {**r, "hidden": (1000, 1000)}
    test, tr = f["take"] < 5, f["take"] >= 5
    x = rows(f["c"])
    t0 = time.time()
    net = train(torch, net_kind, f["c"][tr], y[tr], n_out, r, r["epochs"], seed)
    seconds = time.time() - t0
    path = folder / file
    model, diff = export(torch, net_kind, net, path, x[test], name=f"{folder.name}-{Path(file).stem}")
    with torch.no_grad():
        torch_acc = float((net(torch.tensor(f["c"][test] / 256.0, dtype=torch.float32)).argmax(1).numpy()
                           == y[test]).mean())
    ort_acc = float((ort_scores(path, net_kind, x[test]).argmax(1) == y[test]).mean())
    params, macs = count(torch, model, export_input(net_kind, x[test]))
    with np.load(folder / "calib.npz") as z:
        i8, blob = int8_accuracy(path, z["x"], z["y"], x[test], y[test])
    entry = {"file": file, "architecture": describe(kind, r), "onnx_ops": ops_of(path),
             "onnx_input": "(N, 13, 50, 1) NCHW: x.reshape(50, 13).T" if net_kind == "dscnn" else "(N, 650): x",
             "seed": seed, "epochs": r["epochs"], "batch": r["batch"],
             "optimizer": f"AdamW lr {r['lr']} weight_decay {r['weight_decay']}, OneCycle (15% warm-up, cosine)",
             "loss": "cross-entropy",
             "regularization": (f"dropout {r['dropout']} after each hidden ReLU"
                                + (f", {r['in_dropout']} on the inputs" if r.get("in_dropout") else "")
                                + " (training only)" if r.get("dropout") else "BatchNorm after every conv (folded)"),
             "augmentation": "random time shift -{0}..{0} frames per clip, zero fill".format(r.get("shift", SHIFT)),
             "normalization": "per-coefficient mean/std of the training split, folded into the first layer",
             "params": params, "macs": macs, "float32_bytes": 4 * params,
             "fold_max_abs_diff": diff,
             "float_test_accuracy_onnxruntime": ort_acc, "float_test_accuracy_torch": torch_acc,
             "int8_host_test_accuracy": i8, "int8_blob_bytes": blob,
             "train_seconds": round(seconds, 1)}
    print(f"{kind}: onnxruntime {ort_acc:.4f}  torch {torch_acc:.4f}  int8 host {i8:.4f}  params {params:,}  "
          f"MACs {macs:,}  {seconds:.0f} s")
    if abs(ort_acc - torch_acc) > 1 / len(x[test]) + 1e-9:
        print(f"WARNING {kind}: onnxruntime and torch accuracies disagree")
    return entry


def describe(kind: str, r: dict) -> str:
    if kind == "dscnn":
        c = r["channels"]
        return (f"Conv(3,1) 13->{c} VALID + BN + ReLU; {r['blocks']} x [depthwise Conv(3,1) pad (1,0) + BN + ReLU, "
                f"pointwise 1x1 {c}->{c} + BN + ReLU], MaxPool(2,1) after the first; GlobalAveragePool; Flatten; "
                f"Gemm {c}->10")
    return "-".join(str(v) for v in [650, *r["hidden"], 6 if kind == "speaker" else 10]) + " ReLU"


def run_loso(torch, f: dict, seed: int) -> dict:
    out = {}
    x = rows(f["c"])
    y = f["digit"]
    speakers = sorted(set(f["speaker"]))
    for kind in ("dnn", "dscnn"):
        r = RECIPES[kind]
        if kind == "dnn":
            r = {**r, "hidden": (128, 128, 128)}
        net_kind = "dscnn" if kind == "dscnn" else "dense"
        res, t0 = {}, time.time()
        for s in speakers:
            tr, te = f["speaker"] != s, f["speaker"] == s
            t1 = time.time()
            net = train(torch, net_kind, f["c"][tr], y[tr], 10, r, r["loso_epochs"], seed, quiet=True)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "m.onnx"
                export(torch, net_kind, net, path, x[te])
                acc = float((ort_scores(path, net_kind, x[te]).argmax(1) == y[te]).mean())
                pick = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(tr), 300, replace=False))
                i8, _ = int8_accuracy(path, x[pick], y[pick], x[te], y[te])
            res[s] = {"float_accuracy_onnxruntime": acc, "int8_host_accuracy": i8, "test_rows": int(te.sum()),
                      "train_rows": int(tr.sum()), "seconds": round(time.time() - t1, 1)}
            print(f"LOSO {kind} held out {s}: float {acc:.4f}  int8 host {i8:.4f}  ({time.time() - t1:.0f} s)")
        out[kind] = {"epochs": r["loso_epochs"], "recipe": "as the conventional model, fewer epochs; calib = 300 "
                     "rows of the 5 training speakers (seeded)", "per_speaker": res,
                     "mean_float_accuracy": float(np.mean([v["float_accuracy_onnxruntime"] for v in res.values()])),
                     "mean_int8_host_accuracy": float(np.mean([v["int8_host_accuracy"] for v in res.values()])),
                     "seconds": round(time.time() - t0, 1)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FSDD folder holding recordings/")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models",
                    help="models folder (kws-digits/ and speaker-fsdd/ are written inside)")
    ap.add_argument("--only", action="append", choices=NAMES, help="train only this (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    jobs = args.only or list(NAMES)

    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    f = features(args.data)
    split = "conventional: takes 0-4 of every speaker and digit test (300 clips), takes 5-49 train (2,700)"
    common = {"data": str(Path(args.data).resolve()), "dataset": "Free Spoken Digit Dataset (CC BY-SA 4.0)",
              "features": "microdx.features.fixed_mfcc.frames_int, Params() (8 kHz, frame 200, hop 80, 26 mels, "
                          "13 MFCCs), 50 frames; x = c.reshape(-1) / 256 (frame * 13 + coefficient)",
              "split": split, "seed": args.seed, "torch": torch.__version__, "threads": 1}
    kws = args.out / "kws-digits"
    if {"dnn", "dscnn"} & set(jobs):
        common_k = {**common, **write_data(kws, f, f["digit"], [str(d) for d in range(10)], args.seed)}
        for kind in ("dnn", "dscnn"):
            if kind in jobs:
                update_json(kws / "train.json", common_k, kind,
                            run_model(torch, kind, f, f["digit"], 10, kws, f"{kind}.onnx", args.seed))
    if "loso" in jobs:
        loso = run_loso(torch, f, args.seed)
        for kind, entry in loso.items():
            update_json(kws / "train.json", {**common, "loso_split": "leave one speaker out: train on the other 5 "
                                             "speakers (all 50 takes), test on the held-out speaker's 500 clips"},
                        kind, {"loso": entry})
    if "speaker" in jobs:
        names = sorted(set(f["speaker"]))
        y = np.array([names.index(s) for s in f["speaker"]], np.int64)
        folder = args.out / "speaker-fsdd"
        common_s = {**common, **write_data(folder, f, y, names, args.seed)}
        update_json(folder / "train.json", common_s, "mlp", run_model(torch, "speaker", f, y, 6, folder, "mlp.onnx",
                                                                        args.seed))


if __name__ == "__main__":
    main()
