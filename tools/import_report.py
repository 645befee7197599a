"""Accuracy of every committed ONNX fixture through microdx, as a table and JSON: the source model (onnxruntime),
the float32 blob, the int8 blob on the host reference and on the emulated board, and the scikit-learn digits MLPs
of seeds 0-9 (the dead-unit case).

    python tools/import_report.py [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_import_fixtures import OUT as FIXTURES, digits_split  # noqa: E402


def fixture_rows(tmp: Path) -> list[dict]:
    import onnxruntime as ort

    from microdx import data, pipeline

    manifest = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
    rows = []
    for name, entry in sorted(manifest.items()):
        x_tr, x_te, y_tr, y_te = digits_split()
        if entry["scaling"] == "div16":
            x_tr, x_te = x_tr / 16.0, x_te / 16.0
        labels = np.asarray(entry["labels"]) if entry["labels"] else np.arange(10)
        y_tr, y_te = labels[y_tr], labels[y_te]                 # classes as the model was trained on
        sess = ort.InferenceSession(str(FIXTURES / name), providers=["CPUExecutionProvider"])
        outs = sess.run(None, {sess.get_inputs()[0].name: x_te.astype(np.float32)})
        pred = np.asarray(outs[0]).reshape(-1) if len(outs) > 1 else labels[outs[0].argmax(axis=1)]
        data.save(tmp / "train.npz", x_tr, y_tr)
        data.save(tmp / "test.npz", x_te, y_te)
        pipeline.convert(FIXTURES / name, tmp / "f.dxb", use_float=True)
        conv = pipeline.convert(FIXTURES / name, tmp / "q.dxb", calib=tmp / "train.npz")
        f = pipeline.evaluate(tmp / "f.dxb", data.load(tmp / "test.npz"))
        q = pipeline.evaluate(tmp / "q.dxb", data.load(tmp / "test.npz"), device=True, board="rp2040")
        rows.append({"model": name, "source_accuracy": float(np.mean(pred == y_te)), "float_blob_accuracy": f["accuracy"],
                     "int8_accuracy": q["accuracy"], "device_accuracy": q["device_accuracy"],
                     "mismatches": q["mismatches"], "test_rows": q["count"], "int8_blob_bytes": q["blob_bytes"],
                     "float32_bytes": conv["float32_bytes"], "notes": conv["notes"]})
    return rows


def seed_rows() -> list[dict]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from microdx import reference
    from microdx.importers import npz
    from microdx.ir import canonicalize
    from microdx.quantize import quantize_graph

    x_tr, x_te, y_tr, y_te = digits_split()
    x_tr, x_te = x_tr / 16.0, x_te / 16.0
    rows = []
    for seed in range(10):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = MLPClassifier((64, 32), random_state=seed).fit(x_tr, y_tr)
        g = canonicalize("digits", (64,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(npz.from_sklearn_mlp(clf))])
        q, notes = quantize_graph(g, x_tr)
        rows.append({"seed": seed, "sklearn_accuracy": float(clf.score(x_te, y_te)),
                     "int8_accuracy": reference.accuracy(reference.run(q, x_te), y_te),
                     "smallest_row_max_abs_w": min(float(np.abs(w).max(axis=0).min()) for w in clf.coefs_),
                     "floored_rows_noted": sum("floored" in n for n in notes)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="also write the figures to this JSON file")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = {"fixtures": fixture_rows(Path(tmp)), "digits_seeds": seed_rows()}
    print(f"{'model':32} {'source':>7} {'float':>7} {'int8':>7} {'device':>7} {'diff':>5} {'bytes':>7}")
    for r in report["fixtures"]:
        print(f"{r['model']:32} {r['source_accuracy']:7.4f} {r['float_blob_accuracy']:7.4f} {r['int8_accuracy']:7.4f} "
              f"{r['device_accuracy']:7.4f} {r['mismatches']:>5} {r['int8_blob_bytes']:>7,}")
    print(f"\n{'seed':>4} {'sklearn':>8} {'int8':>7} {'min row max|w|':>15} {'floored':>8}")
    for r in report["digits_seeds"]:
        print(f"{r['seed']:>4} {r['sklearn_accuracy']:8.4f} {r['int8_accuracy']:7.4f} {r['smallest_row_max_abs_w']:15.2e} "
              f"{r['floored_rows_noted']:>8}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
