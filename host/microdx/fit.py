"""Does a blob fit a board? Flash: the blob beside udx's .mpy files on the board's filesystem. Heap: udx, the parsed
header and the model's buffers, measured by running the device code under the MicroPython unix port.

The unix port is 64-bit: its objects are larger than a 32-bit MCU's, so the heap figures overstate a board's
(conservative). Filesystem metadata (FAT tables, LittleFS directory blocks) is not counted.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

from microdx import blob_reader, boards, emulator, paths, ram
from microdx.errors import BoardFitError


def _blocks(nbytes: int, block: int) -> int:
    """`nbytes` rounded up to whole filesystem blocks: a file takes whole blocks."""
    return -(-nbytes // block) * block


@functools.lru_cache(maxsize=None)
def kernel_modules() -> dict[tuple[str, str], str]:
    """{(kind, dtype): "udx/MODULE.mpy"} for every pair the format carries, as device/udx/plan.py KERNELS maps them
    (read from the source, so the two cannot disagree): a "kind/dtype" entry first, else the kind's."""
    from microdx.blob_format import KIND_DTYPES

    tree = ast.parse((paths.repo_dir("device") / "udx" / "plan.py").read_text())
    names = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], "id", None) == "KERNELS")
    table = dict(zip(names[::2], names[1::2]))
    return {(kind, dtype): "udx/%s.mpy" % (table.get(f"{kind}/{dtype}") or table[kind]).split(".")[1]
            for kind, dtype in KIND_DTYPES if f"{kind}/{dtype}" in table or kind in table}


# TFLite's own arithmetic (layers of imported int8 .tflite models, and residual adds): modules udx imports only for
# them, counted only for a blob that has such a layer (graph_kernels marks it with this pseudo pair)
TFLITE_ARITHMETIC = ("TFLite arithmetic", "i8")
TFLITE_MODULES = {"udx/tflq.mpy", "udx/tflq_viper.mpy", "udx/dense_tfl_viper.mpy", "udx/softmax_tfl.mpy"}
# the audio front-end (udx/frontend.py) and the listening loop of the boards' examples (udx/listen.py): an
# application imports them, not the blob; counted for a blob that has a front-end (graph_kernels marks it so)
AUDIO_FRONTEND = ("audio front-end", "i8")
FRONTEND_MODULES = {"udx/frontend.mpy", "udx/frontend_viper.mpy", "udx/frontend_ulab.mpy", "udx/listen.mpy"}


def graph_kernels(graph) -> set[tuple[str, str]]:
    """The (kind, dtype) pairs of a graph's layers: what selects the kernel modules it needs (with
    TFLITE_ARITHMETIC when a layer uses TFLite's requantization, softmax or ADD, AUDIO_FRONTEND when the graph takes
    its input from an audio front-end)."""
    kernels = {(layer.kind, layer.dtype) for layer in graph.layers}
    if any(layer.kind == "add" or "rq" in layer.attrs or "tfl" in layer.attrs for layer in graph.layers):
        kernels.add(TFLITE_ARITHMETIC)
    if graph.frontend is not None:
        kernels.add(AUDIO_FRONTEND)
    return kernels


def runtime_files(kernels=None, arch: str | None = None) -> dict[str, int]:
    """udx's .mpy files a board needs (bytes each), compiled for `arch` (the board's mpy_march; default the unix
    port's): all of them, or with `kernels` (a blob's (kind, dtype) pairs, graph_kernels) the core and only the kernel
    modules those need, each with its fast twins (MODULE_viper.mpy, MODULE_asm.mpy, MODULE_ulab.mpy): udx imports a
    kernel module only when a blob names its kind. udx/dense.mpy is core: udx imports it itself; TFLITE_MODULES
    only with TFLITE_ARITHMETIC in `kernels`."""
    files = emulator.runtime_files(arch)
    modules = kernel_modules()

    def with_twin(names):
        return set(names) | {name.replace(".mpy", twin) for name in names for twin in ("_viper.mpy", "_asm.mpy", "_ulab.mpy")}

    optional = (with_twin(modules.values()) - with_twin({"udx/dense.mpy"})) | TFLITE_MODULES | FRONTEND_MODULES
    needed = with_twin(modules[k] for k in kernels if k in modules) if kernels is not None else optional
    if kernels is not None and TFLITE_ARITHMETIC in kernels:
        needed |= TFLITE_MODULES
    if kernels is not None and AUDIO_FRONTEND in kernels:
        needed |= FRONTEND_MODULES
    return {name: n for name, n in files.items() if name not in optional or name in needed}


def flash(blob_bytes: int, board: str, kernels=None) -> dict:
    """Flash check (bytes): the board's filesystem (flash_fs_bytes) less udx's .mpy files compiled for the board's
    architecture (runtime_files(kernels, mpy_march): with the blob's (kind, dtype) pairs, only the kernels it uses), each rounded up to the filesystem block (fs_block_bytes,
    1 if unknown), against the blob rounded the same way.
    fits is None when the board's filesystem size varies (flash_fs_bytes null)."""
    profile = boards.load(board)
    fs, block = profile["flash_fs_bytes"], profile.get("fs_block_bytes") or 1
    runtime = sum(_blocks(n, block) for n in runtime_files(kernels, profile.get("mpy_march")).values())
    report = {"fits": None, "filesystem_bytes": fs, "block_bytes": block, "runtime_files_bytes": runtime,
              "blob_bytes": blob_bytes, "blob_on_fs_bytes": _blocks(blob_bytes, block)}
    if fs is None:
        report["note"] = f"{board}'s filesystem size varies by board (flash_fs_bytes is null): not checked"
        return report
    allowance = fs - runtime
    report.update(fits=report["blob_on_fs_bytes"] <= allowance, allowance_bytes=allowance,
                  short_by_bytes=max(0, report["blob_on_fs_bytes"] - allowance),
                  spare_bytes=max(0, allowance - report["blob_on_fs_bytes"]))
    return report


def heap(blob_path, board: str, budget: int | None = None) -> dict:
    """Heap check (bytes): one inference of zeros with the board's heap decides `fits`; peak_heap_bytes and its
    parts are measured on a large heap. When it does not fit, smallest_heap_bytes is found by bisection."""
    size = boards.load(board)["heap_bytes"]
    m = emulator.measure(blob_path, budget)
    report = {"fits": emulator.runs_in(blob_path, size, budget), "heap_bytes": size,
              "peak_heap_bytes": m["peak_heap_bytes"], "runtime_heap_bytes": m["runtime_heap_bytes"],
              "budget_bytes": m["budget_bytes"], "interpreter_heap_bytes": m["base_heap_bytes"], "short_by_bytes": 0}
    if not report["fits"]:
        need = emulator.smallest_heap(blob_path, budget, fails_at=size,
                                      guess=m["peak_heap_bytes"] + m["base_heap_bytes"])
        report.update(smallest_heap_bytes=need, short_by_bytes=need - size)
    return report


def check(blob_path, board: str, budget: int | None = None) -> dict:
    """Flash and heap checks of the blob on `board`, with advice on the knob that helps."""
    blob = blob_reader.read(blob_path)
    kernels = graph_kernels(blob.graph)
    report = {"board": board, "flash": flash(blob.size, board, kernels), "heap": heap(blob_path, board, budget)}
    advice = []
    if report["flash"]["fits"] is False:
        bigger = [b for b in boards.names() if b != board and flash(blob.size, b, kernels)["fits"]]
        advice.append("flash: use a board with more flash" + (f" ({', '.join(bigger)})" if bigger else "")
                      + ("; convert to int8 (without --float), about 4x smaller" if blob.graph.dtype == "f32" else "")
                      + "; compression (factorize, sparsify) comes with the optimizers")
    if report["heap"]["fits"] is False:
        min_budget = ram.plan(blob.graph)["min_budget"]
        if report["heap"]["budget_bytes"] > min_budget and emulator.runs_in(blob_path, report["heap"]["heap_bytes"],
                                                                             min_budget):
            advice.append(f"heap: lower --budget (the smallest the model accepts, {min_budget:,} bytes, runs in "
                          f"{board}'s heap), or use a board with more heap")
        else:
            advice.append("heap: use a board with more heap (no budget the model accepts fits this one)")
    report["advice"] = advice
    return report


def require_flash(blob_path, board: str) -> None:
    """BoardFitError if the blob cannot be stored on `board` beside udx (run/eval --device refuse such a blob)."""
    f = flash(Path(blob_path).stat().st_size, board, graph_kernels(blob_reader.read(blob_path).graph))
    if f["fits"] is False:
        raise BoardFitError(
            f"{blob_path} takes {f['blob_on_fs_bytes']:,} bytes of {board}'s {f['filesystem_bytes']:,}-byte "
            f"filesystem, where udx's .mpy files take {f['runtime_files_bytes']:,}: short by {f['short_by_bytes']:,} "
            f"bytes, so it could not be copied to the board; use a board with more flash, or --ignore-flash to "
            f"emulate it anyway")


def format_report(r: dict) -> str:
    """Human-readable lines of check()."""
    f, h = r["flash"], r["heap"]
    if f["fits"] is None:
        flash_line = f["note"]
    else:
        verdict = f"fits, {f['spare_bytes']:,} bytes spare" if f["fits"] else f"short by {f['short_by_bytes']:,} bytes"
        flash_line = (f"{verdict}: blob {f['blob_on_fs_bytes']:,} bytes + udx {f['runtime_files_bytes']:,} bytes of "
                      f".mpy files (in {f['block_bytes']:,}-byte blocks) of a {f['filesystem_bytes']:,}-byte "
                      f"filesystem")
    verdict = "fits" if h["fits"] else (f"short by {h['short_by_bytes']:,} bytes (the smallest heap that runs it is "
                                        f"about {h['smallest_heap_bytes']:,})")
    heap_line = (f"{verdict}: peak {h['peak_heap_bytes']:,} bytes (udx {h['runtime_heap_bytes']:,} + buffers "
                 f"{h['budget_bytes']:,} + header and plans) of a {h['heap_bytes']:,}-byte heap, measured on the "
                 f"64-bit unix port (a 32-bit MCU needs less)")
    return "\n".join([f"board {r['board']}:", f"  flash  {flash_line}", f"  heap   {heap_line}",
                      *(f"  advice {a}" for a in r["advice"])])
