"""`microdx sweep`: evaluate a grid of recipes on one model, in parallel, and chart accuracy against blob bytes.

Each recipe runs the convert pipeline in memory (import, clean, the recipe, int8 calibrated on the calibration data)
and scores the int8 host reference on the evaluation data. The grid runs through joblib, so a larger grid can move to
a Ray or Dask cluster through joblib's backends (`joblib.parallel_config(backend=...)`) without changing this code.
Writes sweep.json, sweep.csv and sweep.png (accuracy against blob bytes, log scale, Pareto front marked).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

# The default grid: no recipe, then each optimizer at a few strengths.
DEFAULT_GRID = ("", "svd:energy=0.99", "svd:energy=0.95", "svd:energy=0.9", "prune:sparsity=0.5",
                "prune:sparsity=0.7", "prune:sparsity=0.9", "prune_units:sparsity=0.25", "prune_units:sparsity=0.5",
                "kmeans:bits=4", "kmeans:bits=3", "int16")


def evaluate_recipe(src, recipe: str, calib_x, x, y_index) -> dict:
    """One grid point: blob bytes, MACs and int8 host accuracy (fraction) of `src` under `recipe`."""
    from microdx import blob_writer, importers, reference
    from microdx.optimizers import get, parse_recipe
    from microdx.optimizers.base import graph_macs
    from microdx.quantize import quantize_graph

    graph = get("clean").apply(importers.load(src)).graph
    for step in parse_recipe(recipe) if recipe else []:
        graph = step.apply(graph).graph
    q, _ = quantize_graph(graph, calib_x)
    return {"recipe": recipe or "(none)", "blob_bytes": len(blob_writer.pack(q)), "macs": graph_macs(q),
            "float_accuracy": reference.accuracy(reference.run_float(graph, x), y_index),
            "accuracy": reference.accuracy(reference.run(q, reference.prepare_input(q, x)), y_index)}


def pareto(rows: list[dict]) -> list[bool]:
    """For each row, whether no other row is at least as small and at least as accurate, and better in one."""
    def dominated(r):
        return any(o["blob_bytes"] <= r["blob_bytes"] and o["accuracy"] >= r["accuracy"]
                   and (o["blob_bytes"] < r["blob_bytes"] or o["accuracy"] > r["accuracy"]) for o in rows)
    return [not dominated(r) for r in rows]


def run(src, data, calib=None, grid=DEFAULT_GRID, out=".", jobs: int = -1, progress=None) -> dict:
    """Evaluate every recipe of `grid` (strings) on `src` with the Data `data` (and `calib`, default `data`);
    writes sweep.json, sweep.csv and sweep.png into `out`. Returns {"rows": [...], "files": [...]}."""
    from joblib import Parallel, delayed

    from microdx import data as data_mod, importers
    from microdx.errors import DataFileError
    from microdx.optimizers import parse_recipe

    for recipe in grid:                      # a bad recipe fails before any work
        if recipe:
            parse_recipe(recipe)
    graph = importers.load(src)
    if data.x is None or data.y is None:
        raise DataFileError(f"{data.path}: sweep needs real-valued x and labels y")
    y_index, _ = data_mod.class_indices(data.y, graph.labels, _outputs(graph), data.path)
    calib_x = (calib or data).x
    rows = []
    tasks = (delayed(evaluate_recipe)(src, r, calib_x, data.x, y_index) for r in grid)
    for row in Parallel(n_jobs=jobs, return_as="generator")(tasks):
        rows.append(row)
        if progress:
            progress(len(rows))
    for row, front in zip(rows, pareto(rows)):
        row["pareto"] = front
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"model": str(src), "data": data.path, "rows": rows}, indent=1) + "\n")
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "sweep.png", title=f"{Path(src).name} on {Path(data.path).name}")
    return {"rows": rows, "files": [str(out / n) for n in ("sweep.json", "sweep.csv", "sweep.png")]}


def _outputs(graph) -> int:
    from microdx.ir import layer_shapes

    return layer_shapes(graph)[-1][1][0]


def plot(rows: list[dict], path, title: str = "") -> None:
    """Accuracy against blob bytes (log x), every recipe labelled, the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    xs, ys = np.array([r["blob_bytes"] for r in rows]), np.array([100 * r["accuracy"] for r in rows])
    front = np.array([r["pareto"] for r in rows])
    ax.scatter(xs[~front], ys[~front], color="0.6", label="dominated")
    order = np.argsort(xs[front])
    ax.plot(xs[front][order], ys[front][order], "o-", color="C0", label="Pareto front")
    labels = {}                              # recipes landing on the same point share one label
    for r, x, y in zip(rows, xs, ys):
        labels.setdefault((x, y), []).append(r["recipe"])
    for (x, y), names in labels.items():
        ax.annotate("\n".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("blob bytes (int8, log scale)")
    ax.set_ylabel("accuracy, int8 host reference (%)")
    ax.set_title(title or "microdx sweep")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_table(result: dict) -> str:
    """The sweep as a text table, Pareto points starred."""
    lines = [f"{'recipe':<36} {'bytes':>9} {'MACs':>9} {'float':>7} {'int8':>7}  pareto"]
    for r in sorted(result["rows"], key=lambda r: r["blob_bytes"]):
        lines.append(f"{r['recipe']:<36} {r['blob_bytes']:>9,} {r['macs']:>9,} {r['float_accuracy']:7.4f} "
                     f"{r['accuracy']:7.4f}  {'*' if r['pareto'] else ''}")
    return "\n".join(lines + ["", "wrote " + ", ".join(result["files"])])
