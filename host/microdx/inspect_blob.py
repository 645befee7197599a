"""`microdx inspect`: what a blob holds, layer by layer, and the RAM the device needs to run it."""
from __future__ import annotations

from microdx import fit, ram
from microdx.ir import layer_shapes
from microdx.ops import op


def inspect(path, board: str | None = None, budget: int | None = None) -> dict:
    """Summary of the blob at `path`: per layer kind, shapes, dtype, bytes, MACs, RAM (bytes); with `board`, also
    whether it fits the board's flash and heap (`fit`, see microdx.fit.check; `budget` as udx.Model's)."""
    from microdx.pipeline import read_blob

    blob = read_blob(path)
    g = blob.graph
    plan = ram.plan(g)
    layers = []
    for layer, (s_in, s_out), rec, mem in zip(g.layers, layer_shapes(g), blob.record_bytes, plan["layers"]):
        layers.append({"name": layer.name, "kind": layer.kind, "dtype": layer.dtype, "in": list(s_in),
                       "out": list(s_out), "act": layer.attrs.get("act"), "bytes": rec,
                       "macs": op(layer.kind).macs(layer),
                       "ram_min_bytes": mem["act_in"] + mem["act_out"] + mem["row_scratch"],
                       "ram_one_tile_bytes": mem["act_in"] + mem["act_out"] + mem["full_scratch"]})
    h = blob.header
    info = {"model": g.name, "format": f"{h.get('producer', '')}", "blob_bytes": blob.size,
            "input": h["input"], "output": h["output"], "labels": g.labels, "layers": layers,
            "macs": sum(x["macs"] for x in layers), "min_budget_bytes": plan["min_budget"],
            "full_budget_bytes": plan["full_budget"], "default_budget_bytes": plan["default_budget"],
            "skip_bytes": plan["skip_bytes"],
            "recipe": g.recipe}
    if board is not None:
        info["fit"] = fit.check(path, board, budget)
    return info


def _dims(shape) -> str:
    """[49, 10, 8] -> '49x10x8'; [64] -> '64'."""
    return "x".join(str(d) for d in shape)


def format_table(info: dict) -> str:
    """Human-readable form of inspect()."""
    rows = [f"{info['model']}: {info['blob_bytes']:,} bytes, {info['macs']:,} MACs per inference ({info['format']})",
            f"input {info['input']['shape']} {info['input']['dtype']}, output {info['output']['shape']}"
            + (f" then {info['output']['post']} on the host" if info['output'].get('post') else "")
            + (f"; recipe {info['recipe']}" if info.get("recipe") else ""),
            "",
            f"{'#':>2} {'layer':<16} {'kind':<8} {'dtype':<5} {'in':>10} {'out':>10} {'act':<5} {'bytes':>10} {'MACs':>10} "
            f"{'RAM min':>9} {'RAM 1 tile':>11}"]
    for i, x in enumerate(info["layers"]):
        rows.append(f"{i:>2} {x['name'][:16]:<16} {x['kind']:<8} {x['dtype']:<5} {_dims(x['in']):>10} {_dims(x['out']):>10} "
                    f"{x['act'] or '-':<5} {x['bytes']:>10,} {x['macs']:>10,} {x['ram_min_bytes']:>9,} {x['ram_one_tile_bytes']:>11,}")
    rows += ["", f"RAM budget (udx.Model budget=, bytes): min {info['min_budget_bytes']:,}, "
                 f"default {info['default_budget_bytes']:,}, every layer in one tile {info['full_budget_bytes']:,}"
             + (f" (each counts a skip buffer {info['skip_bytes']:,} bytes for the residual adds)"
                if info.get("skip_bytes") else "")]
    if "fit" in info:
        rows += ["", fit.format_report(info["fit"])]
    return "\n".join(rows)
