"""The `microdx` command line: convert, inspect, run, eval, demo.

Every error a user can cause is printed as one line `microdx: ErrorName: message` on stderr with exit status 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

from microdx import __version__
from microdx.errors import DeviceError, MicrodxError

NON_FINITE_NOTE = "NaN or Inf, written as null (strict JSON)"


def _strict(value):
    """(value with every NaN/Inf float replaced by None and numpy scalars made plain, whether any was replaced).
    A dict gets a sibling "<key>_note" for each key whose value lost a NaN/Inf."""
    if isinstance(value, dict):
        out, any_bad = {}, False
        for k, v in value.items():
            out[k], bad = _strict(v)
            if bad and f"{k}_note" not in value:
                out[f"{k}_note"] = NON_FINITE_NOTE
            any_bad |= bad
        return out, any_bad
    if isinstance(value, (list, tuple)):
        items = [_strict(v) for v in value]
        return [v for v, _ in items], any(b for _, b in items)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):   # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None, True
    return value, False


def _emit(obj, as_json: bool, text) -> None:
    """Print `obj` as strict JSON, or the text `text()` builds."""
    print(json.dumps(_strict(obj)[0], indent=2, allow_nan=False) if as_json else text())


def _num(v, fmt=".4f", missing="n/a"):
    return missing if v is None else format(v, fmt)


def _progress(total: int, what: str, unit: str = "inference"):
    """A tqdm bar on stderr (shown on a terminal only, so pipes and --json stay clean); returns (update, close)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=None, leave=False, unit_scale=unit == "B")
    done = [0]

    def update(n):
        bar.update(n - done[0])
        done[0] = n

    return update, bar.close


def cmd_convert(a):
    from microdx import fit, pipeline

    if a.max_loss is not None:
        if not a.board or not a.data or a.recipe or a.float or a.frontend:
            raise MicrodxError("--max-loss (auto-fit) needs --board and --data, and chooses the recipe itself "
                               "(no --recipe, no --float, no --frontend: auto-fit a features model, then convert "
                               "with its recipe and --frontend)")
        update, close = _progress(None, "auto-fit: per-layer sensitivity")
        try:
            r = pipeline.convert_to_fit(a.src, a.out, a.board, a.max_loss, _data(a.data),
                                        _data(a.calib) if a.calib else None, progress=update)
        finally:
            close()
    else:
        r = pipeline.convert(a.src, a.out, calib=_data(a.calib) if a.calib else None, use_float=a.float,
                             recipe=a.recipe, frontend=a.frontend, labels=_labels(a.labels) if a.labels else None)
    if a.board:
        try:
            r["fit"] = fit.check(a.out, a.board, a.budget)
        except MicrodxError:   # e.g. a --budget the model cannot run in: a failed command leaves no output
            os.unlink(a.out)
            raise

    def text():
        lines = [f"wrote {a.out}: {r['blob_bytes']:,} bytes ({r['dtype']}), " +
                 (f"the .tflite {r['source_bytes']:,} bytes" if "source_bytes" in r else
                  f"float32 weights {r['float32_bytes']:,} bytes") + f" ({r['compression']}x)"]
        if "loss_points" in r:
            lines.append(f"auto-fit: recipe {r['recipe'] or '(none needed)'}; accuracy on the data "
                         f"{_num(r['accuracy'])} against {_num(r['baseline_int8_accuracy'])} for plain int8 "
                         f"({r['loss_points']} points lost), {r['recipes_measured']} recipes measured")
        if "accuracy_calib" in r:
            optimized = (f"after the recipe {_num(r['optimized_float_accuracy_calib'])}, "
                         if "optimized_float_accuracy_calib" in r else "")
            base = f"float {_num(r['float_accuracy_calib'])}, " if "float_accuracy_calib" in r else ""
            lines.append(f"accuracy on the calibration data: {base}{optimized}converted (host reference) "
                         f"{_num(r['accuracy_calib'])} (y read as {r['labels_as']})")
        lines += [f"note: {n}" for n in r["notes"]]
        if "fit" in r:
            lines.append(fit.format_report(r["fit"]))
        return "\n".join(lines)

    _emit(r, a.json, text)


def _labels(path) -> list[str]:
    """Class names from a text file, one per line (blank lines at the end ignored)."""
    with open(path, encoding="utf-8") as f:
        return f.read().rstrip("\n").split("\n")


def cmd_inspect(a):
    from microdx import inspect_blob

    info = inspect_blob.inspect(a.blob, board=a.board, budget=a.budget)
    _emit(info, a.json, lambda: inspect_blob.format_table(info))


def cmd_deploy(a):
    from microdx import deploy

    size = os.path.getsize(a.blob)
    update, close = _progress(size, f"copy {os.path.basename(a.blob)}", unit="B")
    try:   # with --romfs, progress counts the image's bytes: scaled to the blob's
        r = deploy.deploy(a.blob, a.port, board=a.board, name=a.name, main=a.main,
                          progress=lambda done, total: update(done * size // total), romfs=a.romfs)
    finally:
        close()

    def text():
        return "\n".join([f"deployed {r['model']} ({r['model_bytes']:,} bytes, SHA-256 {r['sha256'][:16]}... checked "
                          f"on the board) to {r['port']} for {r['board']}",
                          f"  copied: {', '.join(r['copied']) or 'nothing'}",
                          f"  already there, identical: {', '.join(r['skipped']) or 'nothing'}"])

    _emit(r, a.json, text)


def cmd_report(a):
    from microdx import report

    r = report.report(a.blob, board=a.board, out_dir=a.out, budget=a.budget)
    _emit({k: r[k] for k in ("png", "md")}, a.json, lambda: f"wrote {r['png']} and {r['md']}")


def _data(path, limit=None):
    from microdx import data

    return data.load(path, limit=limit)


def cmd_run(a):
    from microdx import pipeline

    d = _data(a.input, a.limit)
    update, close = _progress(len(d.rows), "run")
    try:
        r = pipeline.run(a.blob, d, board=a.board, heap=a.heap, budget=a.budget, ignore_flash=a.ignore_flash,
                         progress=update)
    finally:
        close()
    names = r.get("predicted_labels")

    def text():
        lines = [f"{i}: {o}  -> {p}" + (f" ({names[i]})" if names else "")
                 for i, (o, p) in enumerate(zip(r["outputs"], r["predictions"]))]
        lines.append(f"board {r['board']} (heap {r['heap_bytes']:,} bytes): udx code {r['runtime_heap_bytes']:,} "
                     f"bytes, peak heap {r['peak_heap_bytes']:,} bytes, {r['wall_s']:.4f} s for {r['count']} "
                     f"inferences")
        return "\n".join(lines)

    _emit(r, a.json, text)


def cmd_eval(a):
    from microdx import pipeline

    d = _data(a.data, a.limit)
    update, close = _progress(len(d.rows), "eval") if a.device else (None, lambda: None)
    try:
        r = pipeline.evaluate(a.blob, d, device=a.device, board=a.board, heap=a.heap, budget=a.budget,
                              source=a.source, ignore_flash=a.ignore_flash, progress=update)
    finally:
        close()

    def text():
        acc = _num(r["accuracy"], missing=f"n/a ({r.get('accuracy_note')})")
        how = f", y read as {r['labels_as']}" if "labels_as" in r else ""
        lines = [f"{r['model']} on {r['count']} inputs ({r['input']} of {r['data']}{how}): accuracy (host reference) "
                 f"{acc}"]
        if a.source:
            lines.append(f"float model {a.source}: accuracy {_num(r['float_accuracy'])} (drop to the blob: "
                         f"{_num(r['accuracy_drop_points'], '.2f')} points)")
        if a.device:
            diff = f", max |difference| {_num(r['max_abs_diff'], '.3g')}" if "max_abs_diff" in r else ""
            lines.append(f"emulated {r['board']} (heap {r['heap_bytes']:,} bytes): accuracy "
                         f"{_num(r['device_accuracy'])}, {r['mismatches']} outputs differ from the host{diff}, "
                         f"peak heap {r['peak_heap_bytes']:,} bytes, {r['wall_s']:.3f} s")
        return "\n".join(lines)

    _emit(r, a.json, text)


def cmd_bench(a):
    from microdx import bench_compression, bench_frontend, bench_kernels, bench_models

    if a.what in ("kernels", "models", "frontend"):
        bench = {"kernels": bench_kernels, "models": bench_models, "frontend": bench_frontend}[a.what]
        update, close = _progress(len(bench.NAMES) + len(bench_kernels.TARGETS), a.what)
        try:
            r = bench.run(progress=update)
        finally:
            close()
        _emit(r, a.json, lambda: bench.format_report(r))
        return
    update, close = _progress(3000, "MFCC features")
    try:
        r = bench_compression.run(a.data, board=a.board, progress=update)
    finally:
        close()
    _emit(r, a.json, lambda: bench_compression.format_report(r))


def cmd_sweep(a):
    from microdx import sweep

    grid = a.recipe or list(sweep.DEFAULT_GRID)
    update, close = _progress(len(grid), "sweep")
    try:
        r = sweep.run(a.src, _data(a.data), calib=_data(a.calib) if a.calib else None, grid=grid, out=a.out,
                      jobs=a.jobs, progress=update)
    finally:
        close()
    _emit(r, a.json, lambda: sweep.format_table(r))


def cmd_demo(a):
    from microdx import demo

    r = demo.run(board=a.board, out_dir=a.out, fsdd_path=a.data)
    _emit(r, a.json, lambda: demo.format_report(r))


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in the one-line form every other error has."""

    def error(self, message):
        self.exit(2, f"microdx: UsageError: {message} (see {self.prog} --help)\n")


def _size(text: str) -> int:
    from microdx.boards import parse_bytes

    try:
        return parse_bytes(text)
    except MicrodxError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of rows above 0")
    return n


def parser() -> argparse.ArgumentParser:
    from microdx import boards

    known = boards.names()

    def board(name: str) -> str:
        if name not in known:
            raise argparse.ArgumentTypeError(f"unknown board '{name}'; known boards: {', '.join(known)}")
        return name

    def board_option(s, default, what):
        s.add_argument("--board", type=board, default=default, metavar="BOARD",
                       help=f"{what}: {', '.join(known)}" + (f" (default {default})" if default else ""))

    sizes = "bytes, or with K or M, e.g. 32K"
    p = _Parser(prog="microdx", description="Compress models and stream them on MicroPython boards.")
    p.add_argument("--version", action="version", version=f"microdx {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="model file (.npz, .onnx) -> .dxb blob")
    c.add_argument("src")
    c.add_argument("-o", "--out", required=True, help="output .dxb path")
    c.add_argument("--calib", help="data .npz of representative inputs (x, optional y) for int8 calibration")
    c.add_argument("--float", action="store_true", help="keep float32 weights (no quantization)")
    c.add_argument("--labels", metavar="FILE", help="class names, one per line in output order (replaces the model's)")
    c.add_argument("--frontend", metavar="SPEC", help="pack the audio front-end the model's inputs come from: "
                   "'mfcc' (8 kHz, 25 ms frames every 10 ms, 13 MFCCs of 26 mels) or 'mfcc:hop=160,frames=49,...'; "
                   "the model takes Q8 MFCCs / 256 (microdx.features.fixed_mfcc), the device computes them from PCM")
    c.add_argument("--recipe", help="optimizers to apply before quantization, comma-separated, each name or "
                                    "name:knob=value[:knob=value], e.g. 'svd:energy=0.95' (docs/optimizers.md)")
    c.add_argument("--max-loss", type=float, metavar="POINTS",
                   help="auto-fit: choose per-layer svd/prune so the blob fits --board's flash, losing at most this "
                        "many accuracy points on --data (docs/optimizers.md)")
    c.add_argument("--data", help="with --max-loss: labelled data .npz to measure accuracy on")
    board_option(c, None, "check that the blob fits this board's flash and heap")

    i = sub.add_parser("inspect", help="layers, sizes, MACs and RAM of a blob")
    i.add_argument("blob")
    board_option(i, None, "check that the blob fits this board's flash and heap")

    y = sub.add_parser("deploy", help="copy a blob and the runtime it needs to a board with mpremote, verified "
                                      "on the board before the old model is replaced")
    y.add_argument("blob")
    y.add_argument("--port", required=True, help="the board's serial port (mpremote devs lists them)")
    y.add_argument("--name", help="the model's file name on the board (default: the blob's)")
    y.add_argument("--main", action="store_true", help="also copy the board's example, boards/BOARD/main.py")
    y.add_argument("--romfs", action="store_true", help="write the model and the runtime as a ROMFS image (mpremote "
                   "romfs deploy; MicroPython >= 1.25 with a ROMFS partition): udx then reads the weights in place, "
                   "with no copy to RAM")
    board_option(y, "rp2040", "board the runtime is compiled for (mpy-cross -march from its profile)")

    o = sub.add_parser("report", help="a PNG of per-layer bytes and RAM against a board's limits, and a Markdown "
                                      "summary")
    o.add_argument("blob")
    o.add_argument("--out", help="folder for BLOB_report.png and BLOB_report.md (default: the blob's folder)")
    board_option(o, "rp2040", "board whose flash and heap the report sets the layers against")

    r = sub.add_parser("run", help="run a blob on an emulated board (MicroPython unix port)")
    r.add_argument("blob")
    r.add_argument("--input", required=True, help="data .npz with x (N, features) real values, x_q int8 codes or pcm "
                   "(N, samples) int16 audio, or a mono 16-bit .wav (blobs with an audio front-end)")

    e = sub.add_parser("eval", help="accuracy on the host reference and, with --device, the emulated board")
    e.add_argument("blob")
    e.add_argument("--data", required=True, help="data .npz with x (or x_q, or pcm audio) and y labels")
    e.add_argument("--device", action="store_true", help="also run on the emulated board")
    e.add_argument("--source", metavar="MODEL", help="the float model (.npz, .onnx) the blob came from: report its "
                                                      "accuracy and the drop in points")

    d = sub.add_parser("demo", help="the bundled keyword and speaker models on an emulated board; with the FSDD "
                                     "recordings, audio -> label through the device's front-end")
    d.add_argument("--out", help="folder for the confusion matrix PNG (default: ./microdx-demo)")
    d.add_argument("--data", metavar="PATH", help="the FSDD folder (holding recordings/); default ../shared/data/fsdd")
    board_option(d, "rp2040", "board profile to emulate")

    w = sub.add_parser("sweep", help="accuracy and blob bytes of a grid of recipes, with a Pareto plot")
    w.add_argument("src")
    w.add_argument("--data", required=True, help="data .npz (x, y) to score each recipe on")
    w.add_argument("--calib", help="data .npz for int8 calibration (default: --data)")
    w.add_argument("--recipe", action="append", help="a recipe to try (repeat the option; '' for none); "
                                                     "default: a built-in grid of svd, prune and prune_units")
    w.add_argument("--out", default=".", help="folder for sweep.json, sweep.csv, sweep.png (default: here)")
    w.add_argument("--jobs", type=int, default=-1, help="parallel jobs (joblib; default: all cores)")

    b = sub.add_parser("bench", help="benchmarks: 'compression' trains, compresses and runs the DXTK SpeakerID "
                                     "network; 'kernels' measures every kernel and backend on the emulated MCUs; "
                                     "'models' whole models with the viper kernels; 'frontend' the MFCC front-end "
                                     "per frame and its share of real time per board")
    b.add_argument("what", choices=["compression", "kernels", "models", "frontend"])
    b.add_argument("--data", metavar="PATH", help="the FSDD folder (holding recordings/); default ../shared/data/fsdd")
    board_option(b, "rp2040", "board profile to emulate")

    for s in (r, e):
        board_option(s, "rp2040", "board profile to emulate")
        s.add_argument("--heap", type=_size, help=f"override the board's heap ({sizes})")
        s.add_argument("--limit", type=_count, metavar="N", help="only the first N rows of the data")
        s.add_argument("--ignore-flash", action="store_true",
                       help="emulate a blob even if it could not be stored on the board's filesystem")
    for s, when in ((c, " checked with --board"), (i, " checked with --board"), (r, ""), (e, " with --device"),
                    (o, "")):
        s.add_argument("--budget", type=_size, help=f"udx.Model RAM budget for activations and weight tiles"
                                                     f"{when} ({sizes}; default: udx's)")
    for s in (c, i, r, e, d, b, w, o, y):
        s.add_argument("--json", action="store_true", help="print JSON (strict: NaN/Inf become null, with a note)")
    c.set_defaults(func=cmd_convert)
    i.set_defaults(func=cmd_inspect)
    r.set_defaults(func=cmd_run)
    e.set_defaults(func=cmd_eval)
    d.set_defaults(func=cmd_demo)
    b.set_defaults(func=cmd_bench)
    w.set_defaults(func=cmd_sweep)
    o.set_defaults(func=cmd_report)
    y.set_defaults(func=cmd_deploy)
    return p


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_error(e: OSError) -> str:
    """'PATH: what went wrong' for an OSError from opening, reading or writing a user's file."""
    what = e.strerror or str(e)
    paths = [p for p in (e.filename, getattr(e, "filename2", None)) if p]
    return f"{': '.join(map(str, paths))}: {what}" if paths else what


def main(argv=None) -> int:
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as e:   # --help, --version, or a usage error, already printed
            return int(e.code or 0)
        args.func(args)
    except DeviceError as e:
        print(f"microdx: {e.kind}: {_one_line(e.message)}", file=sys.stderr)
        return 2
    except MicrodxError as e:
        print(f"microdx: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # e.g. `microdx run ... | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:      # a file the user named cannot be opened, read or written
        print(f"microdx: {type(e).__name__}: {_one_line(_os_error(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("microdx: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
