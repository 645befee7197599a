"""Auto-fit: choose per-layer compression so an int8 blob fits a board's flash, within an accuracy-loss bound.

1. Baseline: the cleaned model in int8. If it fits the board's flash allowance (microdx.fit.flash), nothing is done.
2. Sensitivity: every candidate (per dense layer: svd at kept energy 0.99 ... 0.7, prune at sparsity 0.5 ... 0.95,
   k-means weight sharing at 6 ... 2 bits) is
   applied to that layer alone; its blob bytes saved and accuracy lost (int8 host reference on the evaluation data)
   are measured.
3. Greedy: candidates in order of accuracy lost per byte saved (least first); each sets its layer's step (one per
   layer; a later candidate replaces an earlier one of the same layer when it saves more on its own). After each the
   combined recipe is measured again and kept only if it is smaller and the total loss stays within the bound; stop
   once it fits.
If nothing fits, BoardFitError says by how many bytes the smallest blob within the bound misses, and which knob would
help. The heap is checked afterwards by `convert --board` (microdx.fit.check).
"""
from __future__ import annotations

from microdx.errors import BoardFitError

SVD_ENERGIES = (0.99, 0.95, 0.9, 0.8, 0.7)
PRUNE_SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)
KMEANS_BITS = (6, 5, 4, 3, 2)


def _candidates(graph) -> list[tuple[str, str]]:
    """(layer name, recipe step) for every dense layer wide enough to compress."""
    out = []
    for layer in graph.layers:
        if layer.kind == "dense" and layer.tensors["w"].shape[1] >= 16:
            out += [(layer.name, f"svd:energy={e}:layers={layer.name}") for e in SVD_ENERGIES]
            out += [(layer.name, f"prune:sparsity={s}:layers={layer.name}") for s in PRUNE_SPARSITIES]
            out += [(layer.name, f"kmeans:bits={b}:layers={layer.name}") for b in KMEANS_BITS]
    return out


def autofit(graph, board: str, calib_x, x, y_index, max_loss_points: float, progress=None) -> dict:
    """Search recipes for the cleaned float `graph`; returns {"recipe", "graph" (int8), "blob_bytes", "accuracy",
    "baseline_accuracy", "loss_points", "allowance_bytes", "tried"}. Accuracies are fractions on (x, y_index)."""
    from microdx import blob_writer, fit, reference
    from microdx.optimizers import parse_recipe
    from microdx.quantize import quantize_graph

    def measure(recipe: str):
        g = graph
        for step in parse_recipe(recipe) if recipe else []:
            g = step.apply(g).graph
        q, _ = quantize_graph(g, calib_x)
        q = q.copy(recipe=recipe)
        return len(blob_writer.pack(q)), reference.accuracy(reference.run(q, reference.prepare_input(q, x)), y_index), q

    def flash(nbytes, q):
        """fit.flash for a blob of `nbytes` made of q's layer kinds (the kernels it needs sit beside it)."""
        return fit.flash(nbytes, board, fit.graph_kernels(q))

    base_bytes, base_acc, base_q = measure("")
    if flash(base_bytes, base_q)["fits"] is None:
        raise BoardFitError(f"{board}'s filesystem size varies (flash_fs_bytes is null): nothing to fit to; "
                            f"use a board profile with a filesystem size")

    def fits(nbytes, q):
        return flash(nbytes, q)["fits"]

    result = {"recipe": "", "graph": base_q, "blob_bytes": base_bytes, "accuracy": base_acc,
              "baseline_accuracy": base_acc, "loss_points": 0.0,
              "allowance_bytes": flash(base_bytes, base_q)["allowance_bytes"], "tried": 1}
    if fits(base_bytes, base_q):
        return result
    sens = []
    for i, (layer, step) in enumerate(_candidates(graph)):
        nbytes, acc, _ = measure(step)
        if nbytes < base_bytes:
            sens.append(((base_acc - acc) / (base_bytes - nbytes), layer, step, base_bytes - nbytes))
        if progress:
            progress(i + 1)
    chosen, best = {}, result                  # layer -> (step, bytes it saves on its own)
    for _, layer, step, saves in sorted(sens):
        if layer in chosen and chosen[layer][1] >= saves:
            continue
        trial = {**chosen, layer: (step, saves)}
        recipe = ",".join(s for s, _ in trial.values())
        nbytes, acc, q = measure(recipe)
        result["tried"] += 1
        if 100 * (base_acc - acc) <= max_loss_points and nbytes < best["blob_bytes"]:
            chosen = trial
            best = {**result, "recipe": recipe, "graph": q, "blob_bytes": nbytes, "accuracy": acc,
                    "loss_points": round(100 * (base_acc - acc), 2),
                    "allowance_bytes": flash(nbytes, q)["allowance_bytes"]}
            if fits(nbytes, q):
                return best
    f = flash(best["blob_bytes"], best["graph"])
    short, allowance = f["short_by_bytes"], f["allowance_bytes"]
    raise BoardFitError(
        f"no recipe found fits {board}'s flash within {max_loss_points} points of accuracy loss: the smallest blob "
        f"within the bound is {best['blob_bytes']:,} bytes ({best['recipe'] or 'no recipe'}, loss "
        f"{best['loss_points']} points), short by {short:,} bytes of the {allowance:,} left beside udx; allow more "
        f"loss (--max-loss), retrain the model smaller, or use a board with more flash")
