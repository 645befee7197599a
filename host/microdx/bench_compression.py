"""`microdx bench compression`: the DXTK SpeakerID network on FSDD, compressed, and measured in one run.

Network (Lane et al., DXTK): 650 inputs (13 MFCC x 50 frames, microdx.features.mfcc) -> 1000 -> 1000 -> softmax over
the 6 FSDD speakers, ReLU, trained with scikit-learn (Adam, L2 1e-3, seed 0) on standardised features.
Split by take: takes 0-4 of every speaker and digit are the held-out test set (300 clips), takes 5-49 train (2,700).
Compression (RECIPE): unit pruning of 95% of each hidden layer (prune_units), 10 epochs of fine-tuning on the training
takes (microdx.retrain), the StandardScaler folded into the first layer (clean), int8 calibrated on every 9th training
clip. Accuracy is measured on the test takes: the float model, the compressed host reference, and the blob on the
emulated Raspberry Pi Pico (MicroPython unix port with the rp2040 heap), whose outputs must equal the host's.
"""
from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HIDDEN = (1000, 1000)
SEED = 0
UNIT_SPARSITY = 0.95
FINETUNE_EPOCHS = 10
QEMU_CLIPS = 5            # test clips also run on the emulated Cortex-M3 / M0 (instruction counts), when present
RECIPE = f"prune_units:sparsity={UNIT_SPARSITY},finetune:epochs={FINETUNE_EPOCHS},clean,int8"
# As reported in the DXTK paper for its SpeakerID DNN (not measured here).
DXTK = {"float32_bytes": 26.9e6, "blob_bytes": 0.4e6, "reduction_percent": 92.8, "loss_points": 3.2}


def _graph(ops, name="speakerid"):
    from microdx.ir import canonicalize

    return canonicalize(name, (650,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(ops)])


def run(data_path=None, board: str = "rp2040", progress=None) -> dict:
    """Train, compress and evaluate; returns the report (bytes, accuracies as fractions, the recipe, timings)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    from microdx import blob_writer, emulator, fit, qemu, reference
    from microdx.datasets import fsdd
    from microdx.importers import npz
    from microdx.optimizers import get
    from microdx.quantize import quantize_graph
    from microdx.retrain import finetune_mlp

    t0 = time.time()
    d = fsdd.features(data_path or fsdd.DEFAULT, progress=progress)
    x, y, take = d["x"], d["speaker"], d["take"]
    train, test = take >= 5, take < 5
    scaler = StandardScaler().fit(x[train])
    xs_train = scaler.transform(x[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(HIDDEN, alpha=1e-3, max_iter=30, random_state=SEED).fit(xs_train, y[train])
    float_acc = float(clf.score(scaler.transform(x[test]), y[test]))
    model = _graph(npz.from_sklearn_mlp(clf))                     # in standardised feature space
    float32_bytes = sum(4 * t.size for layer in model.layers for t in layer.tensors.values())

    pruned = get("prune_units", sparsity=UNIT_SPARSITY).apply(model)
    tuned = finetune_mlp(pruned.graph, xs_train, y[train], epochs=FINETUNE_EPOCHS, seed=SEED)
    normalise = ("affine", {"scale": 1 / scaler.scale_, "shift": -scaler.mean_ / scaler.scale_})
    ops = [normalise] + [op for layer in tuned.layers for op in
                         ([("dense", layer.tensors)] + ([("relu", {})] if layer.attrs.get("act") else []))]
    folded = get("clean").apply(_graph(ops)).graph
    q, notes = quantize_graph(folded, x[train][::9])
    q = q.copy(recipe=RECIPE, labels=list(d["speakers"]))
    with tempfile.TemporaryDirectory(prefix="microdx-bench-") as tmp:
        blob = Path(tmp) / "speakerid.dxb"
        blob_bytes = blob_writer.write(q, blob)
        xin = reference.prepare_input(q, x[test])
        host = reference.run(q, xin)
        dev = emulator.run(blob, xin, board=board)
        cortex = {}
        for target in ("qemu-m3", "qemu-m0"):       # real MCU arithmetic and exact instruction counts, when here
            if qemu.available(target):
                r = qemu.run(blob, xin[:QEMU_CLIPS], target)
                cortex[target] = {k: r[k] for k in ("instructions_per_inference", "instructions_per_mac", "backend")}
                cortex[target]["matches_host"] = bool((r["outputs"] == host[:QEMU_CLIPS]).all())
    compressed_acc = reference.accuracy(host, y[test])
    return {
        "task": "speaker ID, 6 FSDD speakers", "network": "650-1000-1000-6 (DXTK SpeakerID)",
        "split": "FSDD takes 0-4 of every speaker and digit held out: 2,700 train / 300 test clips",
        "float32_bytes": int(float32_bytes), "blob_bytes": int(blob_bytes), "ratio": round(float32_bytes / blob_bytes, 1),
        "float_accuracy": float_acc, "compressed_accuracy": compressed_acc,
        "device_accuracy": reference.accuracy(dev.outputs, y[test]),
        "loss_points": round(100 * (float_acc - compressed_acc), 2),
        "mismatches": int(np.sum(np.any(dev.outputs != host, axis=1))), "test_clips": int(test.sum()),
        "recipe": RECIPE, "widths": [int(layer.tensors["w"].shape[0]) for layer in folded.layers],
        "pruned_float_accuracy_before_finetune": reference.accuracy(
            reference.run_float(pruned.graph, scaler.transform(x[test])), y[test]),
        "board": board, "peak_heap_bytes": dev.stats["peak_heap_bytes"], "macs": int(dev.stats["macs"]),
        "stm32f411_flash": fit.flash(blob_bytes, "stm32f411", fit.graph_kernels(q)), "cortex_m": cortex, "cortex_m_clips": QEMU_CLIPS,
        "dxtk_paper": DXTK, "notes": notes, "seconds": round(time.time() - t0, 1),
    }


def format_report(r: dict) -> str:
    """The report as a table, ours beside the paper's."""
    def row(label, ours, paper=""):
        return f"| {label} | {ours} | {paper} |"

    p = r["dxtk_paper"]
    return "\n".join([
        f"microdx bench compression: {r['task']}, {r['network']}; {r['split']}",
        "",
        "| | microdx (measured in this run) | DXTK paper (reported) |",
        "|---|---|---|",
        row("float32 model", f"{r['float32_bytes']:,} bytes", f"{p['float32_bytes'] / 1e6:.1f} MB"),
        row("compressed", f"{r['blob_bytes']:,} bytes (the whole .dxb blob)", f"{p['blob_bytes'] / 1e6:.1f} MB"),
        row("ratio", f"{r['ratio']}x", f"{p['float32_bytes'] / p['blob_bytes']:.0f}x"),
        row("float accuracy (test takes)", f"{r['float_accuracy']:.4f}"),
        row("compressed accuracy (host reference)", f"{r['compressed_accuracy']:.4f}",
            f"{p['reduction_percent']}% reduction at {p['loss_points']} points loss"),
        row(f"device accuracy (emulated {r['board']})",
            f"{r['device_accuracy']:.4f}, {r['mismatches']} of {r['test_clips']} outputs differ from the host"),
        row("accuracy loss", f"{r['loss_points']} points"),
        row("recipe", f"`{r['recipe']}` (widths {r['widths']}, {r['macs']:,} MACs)"),
        "",
        f"device peak heap {r['peak_heap_bytes']:,} bytes; STM32F411 filesystem beside udx: "
        + (f"fits, {r['stm32f411_flash']['spare_bytes']:,} bytes spare" if r["stm32f411_flash"]["fits"]
           else f"short by {r['stm32f411_flash']['short_by_bytes']:,} bytes")
        + f"; whole run {r['seconds']} s",
        *(f"{t}: {c['instructions_per_inference']:,} instructions per inference ({c['instructions_per_mac']} per MAC, "
          f"{c['backend']} kernels), outputs {'equal' if c['matches_host'] else 'DIFFERENT from'} the host's on "
          f"{r['cortex_m_clips']} test clips" for t, c in r["cortex_m"].items()),
    ])
