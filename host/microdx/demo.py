"""`microdx demo`: the bundled models (models/) on an emulated Raspberry Pi Pico: spoken-digit keyword spotting and
speaker identification on FSDD, speaker identification on JapaneseVowels, each blob run on the MicroPython unix port
with the board's heap over its whole committed test set, reporting float, int8-host and device accuracy, the
outputs that differ (0), blob size and heap. With the FSDD recordings present (../shared/data/fsdd, or --data), the
keyword model also runs end to end from audio: the device's own front-end turns each test WAV into features, and
the confusion matrix of its labels is written as a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from microdx import bundled, data, pipeline, reference
from microdx.datasets import fsdd

MODELS = ("kws-digits", "speaker-fsdd", "speaker-jvowels")


def _variant(name: str, board: str) -> dict:
    """The model's variant for `board` (bundle.json "demo" names the one to show when several target it)."""
    s = bundled.spec(name)
    fits = [v for v in s["variants"] if v["board"] == board and not v.get("heap")]
    if not fits:
        fits = [v for v in s["variants"] if not v.get("heap")]
    return next((v for v in fits if v["name"] == s.get("demo")), fits[0])


def run(board: str = "rp2040", out_dir=None, fsdd_path=None, progress=None) -> dict:
    """Evaluate each bundled model's blob for `board` on the emulated board; with FSDD recordings, also the keyword
    model from audio (confusion matrix PNG in `out_dir`, default ./microdx-demo). Returns the report."""
    rows = []
    for name in MODELS:
        v = _variant(name, board)
        path = bundled.blob(name, v["name"])
        test = data.load(bundled.folder(name) / "test.npz")
        r = pipeline.evaluate(path, test, device=True, board=board, source=bundled.folder(name) / v["source"])
        rows.append({"model": name, "variant": v["name"], "title": bundled.spec(name)["title"],
                     "count": r["count"], "float_accuracy": r["float_accuracy"], "accuracy": r["accuracy"],
                     "device_accuracy": r["device_accuracy"], "mismatches": r["mismatches"],
                     "blob_bytes": r["blob_bytes"], "peak_heap_bytes": r["peak_heap_bytes"],
                     "runtime_heap_bytes": r["runtime_heap_bytes"], "heap_bytes": r["heap_bytes"],
                     "wall_s": r["wall_s"]})
        if progress:
            progress(f"{name}: done")
    report = {"board": board, "models": rows, "audio": None}
    folder = Path(fsdd_path) if fsdd_path else fsdd.DEFAULT
    if (folder / "recordings").is_dir():
        report["audio"] = _from_audio(board, folder, Path(out_dir or "microdx-demo"))
    else:
        report["audio_note"] = f"no FSDD recordings at {folder}: the audio path (WAV -> device front-end -> label) " \
                               f"was skipped; pass --data PATH"
    return report


def _from_audio(board: str, folder: Path, out: Path) -> dict:
    """The keyword blob on the FSDD test recordings (takes 0-4): the device computes the features from the PCM."""
    from microdx import blob_reader

    v = _variant("kws-digits", board)
    path = bundled.blob("kws-digits", v["name"])
    g = blob_reader.read(path).graph
    y = data.load(bundled.folder("kws-digits") / "test.npz").y
    clips = data.Data(str(folder), None, None, y, bundled.test_recordings("kws-digits", folder), g.frontend["rate"])
    dev = pipeline.run(path, clips, board=board)
    host = reference.run(g, pipeline.model_input(g, clips))
    pred = np.array(dev["predictions"])
    out.mkdir(parents=True, exist_ok=True)
    png = out / "kws_confusion.png"
    _confusion_png(y, pred, g.labels, png, f"kws-digits/{v['name']}.dxb on an emulated {board}: {len(y)} FSDD test "
                                           f"recordings, device front-end")
    return {"variant": v["name"], "clips": len(y), "device_accuracy": float((pred == y).mean()),
            "host_accuracy": reference.accuracy(host, y),
            "mismatches": int(np.sum(np.any(np.array(dev["outputs"]) != host, axis=1))),
            "wall_s": dev["wall_s"], "confusion_png": str(png)}


def _confusion_png(y, pred, labels, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6, 5.4))
    ConfusionMatrixDisplay.from_predictions(y, pred, labels=range(len(labels)), display_labels=labels, ax=ax,
                                            colorbar=False)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_report(r: dict) -> str:
    """Human-readable demo report."""
    lines = [f"microdx demo: the bundled models (models/) on an emulated {r['board']} (MicroPython unix port, the "
             f"board's heap)", "",
             "| model | blob | test rows | float | int8 host | device | differing | blob bytes | peak heap |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        lines.append(f"| {m['model']} | {m['variant']}.dxb | {m['count']} | {m['float_accuracy']:.4f} | "
                     f"{m['accuracy']:.4f} | {m['device_accuracy']:.4f} | {m['mismatches']}/{m['count']} | "
                     f"{m['blob_bytes']:,} | {m['peak_heap_bytes']:,} of {m['heap_bytes']:,} |")
    lines += ["", "float: the source model before compression (microdx's float reference); int8 host: the blob on the",
              "host's integer reference; device: the same blob under MicroPython; differing: rows whose device output",
              "differs from the host's at all. Tasks, data, splits and licences: models/*/MODEL.md."]
    a = r["audio"]
    if a:
        lines += ["", f"audio -> label: kws-digits/{a['variant']}.dxb on the {a['clips']} FSDD test recordings "
                  f"(takes 0-4),", "each WAV's PCM pushed through the device's own front-end (udx.frontend) 256 "
                  "samples at a time:",
                  f"  device accuracy {a['device_accuracy']:.4f} (host integer reference {a['host_accuracy']:.4f}), "
                  f"outputs differing from host: {a['mismatches']}/{a['clips']}",
                  f"  confusion matrix: {a['confusion_png']}"]
    else:
        lines += ["", r["audio_note"]]
    return "\n".join(lines)
