"""`microdx bench models`: whole models as a board runs them, with the asm and viper backends: instructions per inference and
per MAC on the emulated Cortex-M targets (exact), peak heap on the board profile's heap (unix port), blob bytes, and
latency estimated per board (instructions x assumed cycles per instruction / clock, boards/*/profile.json).

The models have random int8 weights: speed and memory do not depend on the values (the trained, accurate models and
their cards come with the bundled-models issue). Shapes: the DXTK SpeakerID MLP 650-1000-1000-6, the same pruned 80%
(CSR), and a DS-CNN keyword model over 49 frames x 10 MFCC (conv 10x4 stride 2, 4 x depthwise 3x3 + pointwise,
64 channels, global average pool, dense to 12). Besides them, the committed int8 KWS .tflite of the importer tests
(a smaller DS-CNN, 24 channels, TFLite's converter) run with TFLite's own arithmetic, and its float twin quantized by
microdx: what exact TFLite arithmetic costs against microdx's own requantization on the same network.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

BOARD = "rp2040"
NAMES = ("speakerid-mlp", "speakerid-csr", "ds-cnn", "tflite-kws", "tflite-kws-microdx")   # _models(), in this order


def _models() -> dict:
    from microdx import paths
    from microdx.importers import load
    from microdx.ir import canonicalize
    from microdx.optimizers import get
    from microdx.quantize import quantize_graph
    from microdx.synthetic import random_graph

    rng = np.random.default_rng(0)
    ch = 64
    ops = [("conv2d", "conv0", {"w": rng.normal(size=(ch, 10, 4, 1)) / 6, "b": rng.normal(size=ch) * 0.1,
                                "stride": np.array([2, 2]), "pad": np.array([4, 5, 1, 1])}), ("relu", "r0", {})]
    for i in range(4):
        ops += [("dwconv2d", f"dw{i}", {"w": rng.normal(size=(ch, 3, 3)) / 3, "b": rng.normal(size=ch) * 0.1,
                                        "pad": np.array([1, 1, 1, 1])}), ("relu", f"dr{i}", {}),
                ("conv2d", f"pw{i}", {"w": rng.normal(size=(ch, 1, 1, ch)) / 8, "b": rng.normal(size=ch) * 0.1}),
                ("relu", f"pr{i}", {})]
    ops += [("gap", "gap", {}), ("dense", "fc", {"w": rng.normal(size=(12, ch)) / 8, "b": np.zeros(12)})]
    mlp = random_graph([650, 1000, 1000, 6], seed=1)
    fixtures = paths.repo_dir("tests") / "fixtures" / "tflite"

    def q(graph):
        return quantize_graph(graph, rng.normal(size=(32, graph.input_size)))[0]

    return {
        "speakerid-mlp": (q(mlp), "MLP 650-1000-1000-6 (DXTK SpeakerID shape), int8"),
        "speakerid-csr": (q(get("prune", sparsity=0.8).apply(mlp).graph), "the same, 80% pruned, CSR"),
        "ds-cnn": (q(canonicalize("ds_cnn", (49, 10, 1), ops)), "DS-CNN 49x10, 64 channels, 12 keywords"),
        "tflite-kws": (load(fixtures / "kws_dscnn.tflite"), "int8 .tflite DS-CNN 49x10, 24 channels, TFLite's "
                                                            "arithmetic and softmax"),
        "tflite-kws-microdx": (q(load(fixtures / "kws_dscnn_f32.tflite")), "its float .tflite, quantized by microdx"),
    }


def run(progress=None) -> dict:
    from microdx import bench_kernels, blob_writer, emulator, fit, qemu, reference
    from microdx.optimizers.base import graph_macs

    models = _models()
    rng = np.random.default_rng(1)
    inputs = {name: rng.integers(-128, 128, size=g.input_size).astype(np.int8) for name, (g, _) in models.items()}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="microdx-bench-") as tmp:
        for i, (name, (graph, what)) in enumerate(models.items()):
            blob = Path(tmp) / f"{name}.dxb"
            size = blob_writer.write(graph, blob)
            run_ = emulator.run(blob, inputs[name][None, :], board=BOARD)
            rows[name] = {"model": name, "what": what, "blob_bytes": size, "macs": graph_macs(graph),
                          "board": BOARD, "peak_heap_bytes": run_.stats["peak_heap_bytes"],
                          "runtime_heap_bytes": run_.stats["runtime_heap_bytes"],
                          "budget_bytes": run_.stats["budget_bytes"],
                          "matches_host": bool((run_.outputs == reference.run(graph, inputs[name][None, :])).all()),
                          "flash": fit.flash(size, BOARD, fit.graph_kernels(graph))}
            if progress:
                progress(i + 1)
    measured = []
    for target in bench_kernels.TARGETS:
        if qemu.available(target):
            for rom in (False, True):
                for name, per in bench_kernels.run_target(target, models, inputs, backends=("asm", "viper"),
                                                          budget=None, rom=rom).items():
                    if rom:
                        rows[name].setdefault("romfs", {})[target] = per
                    else:
                        rows[name][target] = per
            measured.append(target)
    return {"models": list(rows.values()), "targets": measured, "board": BOARD,
            "latency_estimate": bench_kernels.latency_estimates(rows, measured),
            "note": "speakerid and ds-cnn: random int8 weights (speed and memory only); tflite-kws: the importer tests' "
                    "fixtures; instruction counts exact (QEMU -icount), udx's default budget, blobs streamed from "
                    "/flash; romfs: the same blobs opened from the target's memory-mapped /rom, weights read in "
                    "place; latencies (streamed) are estimates from assumed cycles per instruction "
                    "(boards/*/profile.json)"}


def format_report(r: dict) -> str:
    targets = r["targets"]
    lines = [f"microdx bench models: asm and viper backends, udx's default budget; peak heap on the {r['board']} "
             f"profile", "", "| model | blob bytes | MACs | peak heap | "
             + " | ".join(f"{t} {b} instr/inference (per MAC)" for t in targets for b in ("asm", "viper"))
             + " |", "|" + "---|" * (4 + 2 * len(targets))]
    for m in r["models"]:
        cells = [f"{m[t][b]['instructions_per_inference']:,} ({m[t][b]['instructions_per_mac']})"
                 + ("" if m[t][b]["matches_host"] else " DIFFERS") for t in targets for b in ("asm", "viper")]
        lines.append(f"| {m['model']} ({m['what']}) | {m['blob_bytes']:,} | {m['macs']:,} | "
                     f"{m['peak_heap_bytes']:,} | " + " | ".join(cells) + " |")
    if targets:
        lines += ["", "the same blobs from the memory-mapped ROMFS (/rom), weights read in place: instructions per "
                      "MAC", "", "| model | " + " | ".join(f"{t} {b}" for t in targets for b in ("asm", "viper"))
                  + " |", "|" + "---|" * (1 + 2 * len(targets))]
        for m in r["models"]:
            lines.append(f"| {m['model']} | " + " | ".join(
                f"{m['romfs'][t][b]['instructions_per_mac']}" + ("" if m["romfs"][t][b]["matches_host"]
                                                                 else " DIFFERS")
                for t in targets for b in ("asm", "viper")) + " |")
    if r["latency_estimate"]:
        boards = list(r["latency_estimate"])
        lines += ["", "estimated latency per inference (instructions x assumed cycles/instruction / clock):", "",
                  "| model | " + " | ".join(boards) + " |", "|" + "---|" * (1 + len(boards))]
        for m in r["models"]:
            lines.append(f"| {m['model']} | " + " | ".join(
                f"{r['latency_estimate'][b]['estimated_us_per_inference'][m['model']] / 1000:.0f} ms" for b in boards)
                + " |")
    lines += ["", r["note"]]
    return "\n".join(lines)
