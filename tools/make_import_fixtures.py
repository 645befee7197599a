"""Make the ONNX fixtures under tests/fixtures/onnx: models exported the way users export them.

    python tools/make_import_fixtures.py            # (re)write tests/fixtures/onnx/*.onnx, manifest.json, README.md
    python tools/make_import_fixtures.py --check    # rebuild in a temporary folder and compare (exit 1 if different)

Needs, besides microdx's dev install: skl2onnx, torch==2.13.0 (CPU), onnxscript (the dynamo exporter) and onnxruntime:

    pip install skl2onnx onnxscript onnxruntime torch==2.13.0

These are tools of this script only, NOT runtime or test dependencies: the tests read the committed .onnx files and
need only onnx and onnxruntime.

Trained fixtures ("fixtures" in manifest.json): scikit-learn's bundled digits (1,797 images of 8x8 pixels with
values 0..16, 10 classes) with one fixed split, `digits_split()`:

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0,
                                                        stratify=y)

Features ("scaling" in the manifest): "raw" = the pixel values 0..16 as float32 (scikit-learn models; the pipeline
one standardises them itself with its StandardScaler), "div16" = float32 pixels / 16.0 (PyTorch models).
Per file the manifest records its input name, outputs, the score tensor to compare ("scores": probabilities or
logits, one column per class), class labels (scikit-learn; [] = classes 0..9 by column), the node list and
onnxruntime's accuracy on the held-out test split (540 rows).

Deterministic and idempotent (fixed seeds, one thread, deterministic torch algorithms): a second run rewrites the
same bytes with the same library versions. Exported bytes may differ between library versions (and the dynamo
exporter records source paths of torch in node metadata), so --check compares their accuracies. Hand-built graphs for the
importer's graph-structure cases are made inside the tests (tests/test_onnx_graphs.py, tests/test_cli_errors.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "onnx"
SPLIT = "sklearn.datasets.load_digits; train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)"
SCALING = {"raw": "digits pixel values 0..16 as float32, unscaled",
           "div16": "digits pixel values as float32 divided by 16.0 (0..1)"}
COMMAND = "pip install skl2onnx onnxscript onnxruntime torch==2.13.0 && python tools/make_import_fixtures.py"


def digits_split():
    """(x_train, x_test, y_train, y_test): digits pixels as float32 (0..16), stratified 70/30, random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)


# ---------------------------------------------------------------------------------------------------- scikit-learn
def _sklearn(out: Path, x_tr, y_tr) -> dict:
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    made = {}
    specs = {
        # classes 1, 3, ..., 19: the labels must travel into the blob
        "skl_mlp_zipmap.onnx": (MLPClassifier((32,), max_iter=300, random_state=0), y_tr * 2 + 1, None),
        "skl_mlp_nozipmap.onnx": (MLPClassifier((32,), max_iter=300, random_state=0), y_tr, {"zipmap": False}),
        "skl_pipeline_scaler.onnx": (make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=300,
                                                                                   random_state=0)), y_tr, None),
    }
    for name, (model, y, options) in specs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_tr, y)
        onx = to_onnx(model, x_tr[:1], options={id(model): options} if options else None,
                      target_opset={"": 17, "ai.onnx.ml": 3})
        (out / name).write_bytes(onx.SerializeToString())
        made[name] = {"scaling": "raw", "labels": [int(c) for c in model.classes_],
                      "made_by": f"skl2onnx.to_onnx({type(model).__name__}, options={options})"}
    made["skl_pipeline_scaler.onnx"]["made_by"] += ", make_pipeline(StandardScaler(), MLPClassifier((32, 16)))"
    return made


# --------------------------------------------------------------------------------------------------------- PyTorch
def _trained(net, x_tr, y_tr):
    """`net` trained with Adam on (x_tr / 16, y_tr), 30 epochs of 64-row batches in a fixed order, in eval mode."""
    import torch
    from torch import nn

    x = torch.tensor(x_tr / 16.0, dtype=torch.float32)
    y = torch.tensor(y_tr, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(30):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return net.eval()


def _torch(out: Path, x_tr, y_tr) -> dict:
    import torch
    from torch import nn

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)    # "torchvision is not installed" from the registry
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    # the networks are made in this order from the one seed: keep it, or every torch fixture changes
    net = _trained(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)),
                   x_tr, y_tr)
    # BatchNorm1d without affine parameters: the classic exporter feeds it Constant nodes
    plain = _trained(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32, affine=False), nn.ReLU(), nn.Dropout(0.2),
                                   nn.Linear(32, 10)), x_tr, y_tr)
    # trained on logits; Softmax(dim=1) appended for the export, so the file outputs probabilities
    body = _trained(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), x_tr, y_tr)
    soft = nn.Sequential(*body, nn.Softmax(dim=1)).eval()

    example = (torch.zeros(2, 64),)
    bn = "Linear(64,32)-BatchNorm1d(32)-ReLU-Dropout(0.2)-Linear(32,10)"

    def classic(model, name, output, made_by):
        torch.onnx.export(model, example, str(out / name), dynamo=False, input_names=["x"], output_names=[output],
                          opset_version=17, dynamic_axes={"x": {0: "N"}, output: {0: "N"}})
        made[name] = {"scaling": "div16", "labels": [], "made_by": made_by}

    def dynamo(model, name, made_by, **kw):
        program = torch.onnx.export(model, example, dynamo=True, input_names=["x"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False, **kw)
        program.save(str(out / name), external_data=False)      # one self-contained file
        made[name] = {"scaling": "div16", "labels": [], "made_by": made_by}

    made = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classic(net, "torch_bn_classic.onnx", "logits", f"torch.onnx.export(dynamo=False, opset_version=17), {bn}")
        classic(plain, "torch_bn_noaffine_classic.onnx", "logits",
                "torch.onnx.export(dynamo=False, opset_version=17), the same with BatchNorm1d(32, affine=False)")
        dynamo(net, "torch_bn_dynamo.onnx", f"torch.onnx.export(dynamo=True) (default optimize=True), {bn}")
        dynamo(net, "torch_bn_dynamo_noopt.onnx", f"torch.onnx.export(dynamo=True, optimize=False), {bn}",
               optimize=False)
        classic(soft, "torch_mlp_softmax_classic.onnx", "probs",
                "torch.onnx.export(dynamo=False, opset_version=17), Linear(64,32)-ReLU-Linear(32,10)-Softmax(dim=1)")
    return made


def _scaled(x, scaling):
    return x / 16.0 if scaling == "div16" else x


def build(out: Path) -> dict:
    """Train, export and score every fixture into `out`; returns the manifest (also written to out)."""
    import onnx
    import onnxruntime as ort

    x_tr, x_te, y_tr, y_te = digits_split()
    out.mkdir(parents=True, exist_ok=True)
    made = {**_sklearn(out, x_tr, y_tr), **_torch(out, x_tr, y_tr)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    for name, entry in made.items():
        model = onnx.load(str(out / name))
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(str(out / name), opts, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        scores_name = outputs[-1]                 # skl2onnx: (label, probabilities); torch: (logits,) or (probs,)
        x = _scaled(x_te, entry["scaling"]).astype(np.float32)
        pred = sess.run([outputs[0]], {sess.get_inputs()[0].name: x})[0]
        if len(outputs) == 1:                     # scores: arg-max
            pred = pred.argmax(axis=1)
        truth = y_te * 2 + 1 if name == "skl_mlp_zipmap.onnx" else y_te
        entry.update(input=sess.get_inputs()[0].name, outputs=outputs, scores=scores_name,
                     nodes=[n.op_type for n in model.graph.node], bytes=(out / name).stat().st_size,
                     onnxruntime_test_accuracy=round(float(np.mean(np.asarray(pred).reshape(-1) == truth)), 4))
    manifest = {"split": SPLIT, "scaling": SCALING, "test_rows": int(len(y_te)), "regenerate": COMMAND,
                "fixtures": made}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "README.md").write_text(readme(manifest))
    return manifest


def readme(manifest: dict) -> str:
    """tests/fixtures/onnx/README.md, from the manifest (so its numbers are the ones measured)."""
    def outs(entry, key):
        return ", ".join(f"**`{o}`**" if o == entry[key] else f"`{o}`" for o in entry["outputs"])

    def labels(entry):
        return ", ".join(map(str, entry["labels"])) if entry["labels"] else "none (column i = digit i)"

    lines = [
        "# ONNX fixtures",
        "",
        "Written by `tools/make_import_fixtures.py` (with `manifest.json` and this file); do not edit by hand. "
        "Regenerate from the repository root:",
        "",
        "```bash",
        manifest["regenerate"],
        "python tools/make_import_fixtures.py --check   # rebuild in a temporary folder and compare",
        "```",
        "",
        "skl2onnx, torch, onnxscript are needed only to regenerate; the tests need only onnx and onnxruntime.",
        "",
        "## Trained on digits (`fixtures` in manifest.json)",
        "",
        "Data: scikit-learn's bundled digits (1,797 8×8 images, pixel values 0–16, 10 classes), one split "
        f"(1,257 train / {manifest['test_rows']} test):",
        "",
        "```python",
        "import numpy as np",
        "from sklearn.datasets import load_digits",
        "from sklearn.model_selection import train_test_split",
        "x, y = load_digits(return_X_y=True)",
        "x_train, x_test, y_train, y_test = train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0,",
        "                                                    stratify=y)",
        "```",
        "",
        "Feature scaling (`scaling`): " + "; ".join(f"`{k}` = {v}" for k, v in manifest["scaling"].items())
        + ". The pipeline fixture standardises the raw pixels itself (its StandardScaler is the `Scaler` node). "
        "`skl_mlp_zipmap.onnx` was trained on the labels `y * 2 + 1` (classes 1, 3, …, 19); its test truth is "
        "`y_test * 2 + 1`.",
        "",
        "Manifest keys per file: `scaling`, `input`, `outputs`, `scores` (the score tensor to compare: probabilities "
        "or logits, one column per class in `labels` order; ZipMap gives one {label: probability} dict per row), "
        "`labels` (scikit-learn's `classes_`; [] = none), `nodes`, `bytes`, `onnxruntime_test_accuracy` (the source "
        "model's accuracy on the test split, run by onnxruntime: labels output for scikit-learn, arg-max for PyTorch).",
        "",
        "| file | made with | input → outputs (**scores**) | labels | scaling | nodes | bytes | test accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in manifest["fixtures"].items():
        lines.append(f"| `{name}` | {e['made_by']} | `{e['input']}` → {outs(e, 'scores')} | {labels(e)} | "
                     f"{e['scaling']} | {' '.join(e['nodes'])} | {e['bytes']:,} | "
                     f"{e['onnxruntime_test_accuracy']:.4f} |")
    lines += [
        "",
        "PyTorch models were trained on CPU with `torch.manual_seed(0)`, Adam, 30 epochs, and put in `eval()` before "
        "export; input `x` of shape (N, 64) with a dynamic batch axis `N`.",
        "",
        "Hand-built graphs for the importer's graph-structure cases are made inside `tests/test_onnx_graphs.py` and "
        "`tests/test_cli_errors.py`.",
    ]
    return "\n".join(lines).replace("'N'", "N") + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="rebuild in a temporary folder and compare with the committed")
    a = p.parse_args()
    if a.check:
        old = json.loads((OUT / "manifest.json").read_text())
        bad = []
        with tempfile.TemporaryDirectory() as tmp:
            new = build(Path(tmp))
            for name, e in old["fixtures"].items():
                was = e["onnxruntime_test_accuracy"]
                now = new["fixtures"].get(name, {}).get("onnxruntime_test_accuracy")
                print(f"{name:34} accuracy committed {was}  rebuilt {now}")
                bad += [name] if was != now else []
            bad += sorted(set(new["fixtures"]) - set(old["fixtures"]))
        print("check:", "differs: " + ", ".join(bad) if bad else "same")
        return 1 if bad else 0
    manifest = build(OUT)
    for name, e in manifest["fixtures"].items():
        print(f"{name:34} {e['bytes']:>7,} bytes  accuracy {e['onnxruntime_test_accuracy']:.4f}  "
              f"{' '.join(e['nodes'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
