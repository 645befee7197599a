"""Make the ONNX fixtures of tests/test_real_exports.py: models exported the way users export them.

    python tools/make_import_fixtures.py [--check]

Needs, besides microdx's dev install: skl2onnx, torch==2.13.0 (CPU) and onnxscript (the dynamo exporter).
They are tools of this script only: the tests read the committed .onnx files with onnx and onnxruntime.

All models are trained on scikit-learn's bundled digits (1,797 images of 8x8 pixels with values 0..16, 10 classes)
with one fixed split, `digits_split()`; the tests repeat it. Features: raw pixel values as float32 for the
scikit-learn models (the pipeline one scales them itself), pixels / 16 for the PyTorch ones (manifest "scaling").
Writes tests/fixtures/onnx/*.onnx and manifest.json (per file: scaling, output tensor, labels, onnxruntime accuracy
on the test split). Deterministic: fixed seeds, one thread. --check rebuilds in a temporary folder and compares
the accuracies (exported bytes can differ between library versions; accuracies are what the tests rely on).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "onnx"


def digits_split():
    """(x_train, x_test, y_train, y_test): digits pixels as float32 (0..16), stratified 70/30, random_state=0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)


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
    return made


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

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = _trained(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10)),
                   x_tr, y_tr)
    # BatchNorm1d without affine parameters: the classic exporter feeds it Constant nodes
    plain = _trained(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32, affine=False), nn.ReLU(), nn.Dropout(0.2),
                                   nn.Linear(32, 10)), x_tr, y_tr)
    example = (torch.zeros(2, 64),)
    classic = dict(dynamo=False, input_names=["x"], output_names=["logits"], opset_version=17,
                   dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    made = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, str(out / "torch_bn_classic.onnx"), **classic)
        made["torch_bn_classic.onnx"] = {"scaling": "div16", "labels": [],
                                         "made_by": "torch.onnx.export(dynamo=False), Linear-BatchNorm1d-ReLU-Dropout-Linear"}
        torch.onnx.export(plain, example, str(out / "torch_bn_noaffine_classic.onnx"), **classic)
        made["torch_bn_noaffine_classic.onnx"] = {"scaling": "div16", "labels": [], "made_by":
                                                  "torch.onnx.export(dynamo=False), BatchNorm1d(affine=False)"}
        program = torch.onnx.export(net, example, dynamo=True, input_names=["x"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
        program.save(str(out / "torch_bn_dynamo.onnx"), external_data=False)
        made["torch_bn_dynamo.onnx"] = {"scaling": "div16", "labels": [],
                                        "made_by": "torch.onnx.export(dynamo=True), Linear-BatchNorm1d-ReLU-Dropout-Linear"}
    return made


def _scaled(x, scaling):
    return x / 16.0 if scaling == "div16" else x


def build(out: Path) -> dict:
    """Train, export and score every fixture into `out`; returns the manifest."""
    import onnx
    import onnxruntime as ort

    x_tr, x_te, y_tr, y_te = digits_split()
    out.mkdir(parents=True, exist_ok=True)
    made = {**_sklearn(out, x_tr, y_tr), **_torch(out, x_tr, y_tr)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    for name, entry in made.items():
        model = onnx.load(str(out / name))
        onnx.checker.check_model(model)
        sess = ort.InferenceSession(str(out / name), opts, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        scores_name = outputs[-1]                 # skl2onnx: (label, probabilities); torch: (logits,)
        pred = sess.run([outputs[0]], {sess.get_inputs()[0].name: _scaled(x_te, entry["scaling"]).astype(np.float32)})[0]
        if len(outputs) == 1:                     # scores: arg-max
            pred = pred.argmax(axis=1)
        truth = y_te * 2 + 1 if name == "skl_mlp_zipmap.onnx" else y_te
        entry.update(outputs=outputs, scores=scores_name, nodes=[n.op_type for n in model.graph.node],
                     bytes=(out / name).stat().st_size,
                     onnxruntime_test_accuracy=round(float(np.mean(np.asarray(pred).reshape(-1) == truth)), 4))
    manifest = {"split": "sklearn digits, train_test_split(test_size=0.3, random_state=0, stratify=y)",
                "fixtures": made}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="rebuild in a temporary folder and compare accuracies")
    a = p.parse_args()
    if a.check:
        with tempfile.TemporaryDirectory() as tmp:
            new = build(Path(tmp))["fixtures"]
        old = json.loads((OUT / "manifest.json").read_text())["fixtures"]
        for name in old:
            print(name, old[name]["onnxruntime_test_accuracy"], new[name]["onnxruntime_test_accuracy"])
        return
    for name, e in build(OUT)["fixtures"].items():
        print(f"{name:28} {e['bytes']:>7,} bytes  accuracy {e['onnxruntime_test_accuracy']:.4f}  {' '.join(e['nodes'])}")


if __name__ == "__main__":
    main()
