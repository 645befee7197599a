"""`microdx report MODEL.dxb [--board B]`: a picture and a page people look at: per-layer bytes (flash) and RAM
against the board's limits as a PNG, and a Markdown summary beside it, from microdx.inspect_blob and microdx.fit.

Both files are written to temporary names in the output folder and renamed once complete, so a failed report
leaves nothing behind."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from microdx import boards, inspect_blob


def report(path, board: str = "rp2040", out_dir=None, budget: int | None = None) -> dict:
    """Write <stem>_report.png and <stem>_report.md for the blob at `path` (into `out_dir`, default the blob's
    folder); returns {"png", "md", "inspect"}. The board's figures (flash and heap fit) are measured by
    microdx.fit.check (one inference on the emulated board)."""
    info = inspect_blob.inspect(path, board=board, budget=budget)
    out = Path(out_dir) if out_dir else Path(path).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(path).stem
    png, md = out / f"{stem}_report.png", out / f"{stem}_report.md"
    _atomic(png, lambda f: _plot(info, board, f))
    _atomic(md, lambda f: f.write(markdown(info, board, png.name).encode()))
    return {"png": str(png), "md": str(md), "inspect": info}


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _plot(info: dict, board: str, f) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = info["layers"]
    names = [f"{i} {x['kind']}" for i, x in enumerate(layers)]
    fit = info["fit"]
    fl, hp = fit["flash"], fit["heap"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.35 * len(layers) + 2.2))
    ys = range(len(layers))
    a.barh(ys, [x["bytes"] for x in layers], color="tab:blue")
    a.set_yticks(list(ys), names, fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("bytes in the blob")
    title = f"flash: blob {info['blob_bytes']:,} B"
    if fl.get("allowance_bytes") is not None:
        a.axvline(fl["allowance_bytes"], color="tab:red", ls="--", label=f"{board} room for blobs "
                                                                         f"{fl['allowance_bytes']:,} B")
        a.legend(fontsize=8, loc="lower right")
        title += " (fits)" if fl["fits"] else f" (short by {fl['short_by_bytes']:,} B)"
    a.set_title(title, fontsize=9)
    b.barh(ys, [x["ram_one_tile_bytes"] for x in layers], color="tab:orange", alpha=0.5, label="layer in one tile")
    b.barh(ys, [x["ram_min_bytes"] for x in layers], color="tab:orange", label="smallest tile")
    b.set_yticks(list(ys), [""] * len(layers))
    b.invert_yaxis()
    b.axvline(hp["budget_bytes"], color="tab:green", ls="--", label=f"udx budget {hp['budget_bytes']:,} B")
    b.axvline(hp["heap_bytes"] - hp["runtime_heap_bytes"], color="tab:red", ls="--",
              label=f"{board} heap less udx's code {hp['heap_bytes'] - hp['runtime_heap_bytes']:,} B")
    b.set_xlabel("RAM per layer, bytes (activations in and out + weight tile)")
    b.legend(fontsize=8, loc="lower right")
    b.set_title(f"heap: peak {hp['peak_heap_bytes']:,} of {hp['heap_bytes']:,} B "
                + ("(fits)" if hp["fits"] else f"(short by {hp['short_by_bytes']:,} B)"), fontsize=9)
    fig.suptitle(f"{info['model']} on {board}: {info['macs']:,} MACs per inference", fontsize=10)
    fig.tight_layout()
    fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def markdown(info: dict, board: str, png_name: str) -> str:
    """The Markdown summary: the model, the board's verdicts and advice, the per-layer table."""
    fit = info["fit"]
    p = boards.load(board)
    lines = [f"# {info['model']} on {board}", "", f"![per-layer bytes and RAM]({png_name})", "",
             f"- blob: {info['blob_bytes']:,} bytes, {len(info['layers'])} layers, {info['macs']:,} MACs per "
             f"inference" + (f", recipe `{info['recipe']}`" if info.get("recipe") else ""),
             f"- input {info['input']['shape']} {info['input']['dtype']}, output {info['output']['shape']}",
             f"- RAM budget (udx.Model budget=): smallest {info['min_budget_bytes']:,}, default "
             f"{info['default_budget_bytes']:,}, every layer in one tile {info['full_budget_bytes']:,} bytes", "",
             "## Fit", "", "```text", inspect_blob.fit.format_report(fit), "```", ""]
    if p.get("clock_hz"):
        lines += [f"{board}: {p['clock_hz'] / 1e6:g} MHz, {p['heap_bytes']:,}-byte heap in its profile "
                  f"(boards/{board}/profile.json). Heap figures are measured on the 64-bit unix port: a 32-bit MCU needs "
                  f"less.", ""]
    lines += ["## Layers", "", "| # | layer | kind | dtype | in | out | bytes | MACs | RAM smallest tile | RAM one tile |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for i, x in enumerate(info["layers"]):
        lines.append(f"| {i} | {x['name']} | {x['kind']} | {x['dtype']} | {inspect_blob._dims(x['in'])} | "
                     f"{inspect_blob._dims(x['out'])} | {x['bytes']:,} | {x['macs']:,} | {x['ram_min_bytes']:,} | "
                     f"{x['ram_one_tile_bytes']:,} |")
    return "\n".join(lines) + "\n"
