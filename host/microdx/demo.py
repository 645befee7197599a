"""`microdx demo`: train a small MLP on JapaneseVowels (9-speaker speaker ID), convert it to int8 and run the
whole test set on an emulated board, reporting float, int8-host and device accuracy, size and RAM."""
from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path

from microdx import data, pipeline
from microdx.datasets import japanese_vowels
from microdx.importers import npz

HIDDEN = (64, 32)
SEED = 0


def train(x, y):
    """A fitted sklearn MLPClassifier (ReLU, Adam, fixed seed)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, alpha=1e-3, max_iter=400, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(x, y)


def run(board: str = "rp2040", out_dir=None) -> dict:
    """Train, convert and evaluate; artefacts go to `out_dir` (a temporary folder if None). Returns the report."""
    x_tr, y_tr, x_te, y_te = japanese_vowels.load()
    clf = train(x_tr, y_tr)
    keep = contextlib.nullcontext(out_dir) if out_dir else tempfile.TemporaryDirectory(prefix="microdx-demo-")
    with keep as folder:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        labels = [f"speaker{i + 1}" for i in range(9)]
        npz.save(out / "jvowels_mlp.npz", npz.from_sklearn_mlp(clf), labels, "jvowels_mlp")
        data.save(out / "train.npz", x_tr, y_tr)
        data.save(out / "test.npz", x_te, y_te)
        conv = pipeline.convert(out / "jvowels_mlp.npz", out / "jvowels_mlp.dxb", calib=out / "train.npz")
        ev = pipeline.evaluate(out / "jvowels_mlp.dxb", x_te, y_te, device=True, board=board)
    float_acc = float(clf.score(x_te, y_te))   # scikit-learn's own float64 model, independent of our importer
    sizes = "-".join(str(s) for s in (x_tr.shape[1], *HIDDEN, 9))
    return {"task": "JapaneseVowels speaker ID, 9 speakers", "model": f"MLP {sizes} (scikit-learn, seed {SEED})",
            "train": int(len(x_tr)), "test": int(len(x_te)), "float_accuracy": float_acc,
            "accuracy": ev["accuracy"], "device_accuracy": ev["device_accuracy"], "mismatches": ev["mismatches"],
            "blob_bytes": ev["blob_bytes"], "float32_bytes": conv["float32_bytes"],
            "runtime_heap_bytes": ev["runtime_heap_bytes"], "peak_heap_bytes": ev["peak_heap_bytes"],
            "heap_bytes": ev["heap_bytes"], "board": board, "wall_s": ev["wall_s"], "notes": conv["notes"]}


def format_report(r: dict) -> str:
    """Human-readable demo report."""
    def row(label, value):
        return f"  {label:<36} {value}"

    return "\n".join([
        f"microdx demo: {r['task']}; {r['model']}",
        f"  data: JapaneseVowels from the sktime 1.2.0 wheel, standard split {r['train']} train / {r['test']} test",
        row("float accuracy (test, scikit-learn)", f"{r['float_accuracy']:.4f}"),
        row("int8 accuracy (host reference)", f"{r['accuracy']:.4f}"),
        row(f"int8 accuracy (emulated {r['board']})",
            f"{r['device_accuracy']:.4f}   outputs differing from host: {r['mismatches']}/{r['test']}"),
        row("blob size", f"{r['blob_bytes']:,} bytes (float32 weights {r['float32_bytes']:,} bytes)"),
        row("device heap", f"udx code {r['runtime_heap_bytes']:,} bytes, peak {r['peak_heap_bytes']:,} bytes "
                           f"(of the board's {r['heap_bytes']:,})"),
        row("device time", f"{r['wall_s']:.3f} s for {r['test']} inferences (unix port on this PC, not MCU speed)"),
        *(f"  note: {n}" for n in r["notes"]),
    ])
