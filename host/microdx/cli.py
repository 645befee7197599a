"""The `microdx` command line: convert, inspect, run, eval, demo."""
from __future__ import annotations

import argparse
import json
import os
import sys

from microdx import __version__
from microdx.errors import DeviceError, MicrodxError


def _emit(obj, as_json: bool, text: str) -> None:
    print(json.dumps(obj, indent=2) if as_json else text)


def cmd_convert(a):
    from microdx import pipeline

    r = pipeline.convert(a.src, a.out, calib=a.calib, use_float=a.float)
    lines = [f"wrote {a.out}: {r['blob_bytes']:,} bytes ({r['dtype']}), float32 weights {r['float32_bytes']:,} bytes "
             f"({r['compression']}x)"]
    if "accuracy_calib" in r:
        lines.append(f"accuracy on the calibration data: float {r['float_accuracy_calib']:.4f}, "
                     f"converted (host reference) {r['accuracy_calib']:.4f}")
    lines += [f"note: {n}" for n in r["notes"]]
    _emit(r, a.json, "\n".join(lines))


def cmd_inspect(a):
    from microdx import inspect_blob

    info = inspect_blob.inspect(a.blob)
    _emit(info, a.json, inspect_blob.format_table(info))


def _heap(a):
    from microdx.boards import parse_bytes

    return parse_bytes(a.heap) if a.heap else None


def cmd_run(a):
    from microdx import blob_reader, data, emulator, reference

    graph = blob_reader.read(a.blob).graph
    x, _ = data.load(a.input)
    xin = reference.prepare_input(graph, x)
    run = emulator.run(a.blob, xin, board=a.board, heap=_heap(a), budget=a.budget)
    outputs = run.outputs.tolist()
    r = {"outputs": outputs, "predictions": [int(v) for v in run.outputs.argmax(axis=1)], **run.stats}
    lines = [f"{i}: {o}  -> {p}" for i, (o, p) in enumerate(zip(outputs, r["predictions"]))]
    lines.append(f"board {r['board']} (heap {r['heap_bytes']:,} bytes): udx code {r['runtime_heap_bytes']:,} bytes, "
                 f"peak heap {r['peak_heap_bytes']:,} bytes, {r['wall_s']:.4f} s for {len(outputs)} inferences")
    _emit(r, a.json, "\n".join(lines))


def cmd_eval(a):
    from microdx import data, pipeline

    x, y = data.load(a.data, need_labels=True)
    r = pipeline.evaluate(a.blob, x, y, device=a.device, board=a.board, heap=_heap(a))
    lines = [f"{r['model']} on {r['count']} inputs: accuracy (host reference) {r['accuracy']:.4f}"]
    if a.device:
        lines.append(f"emulated {r['board']} (heap {r['heap_bytes']:,} bytes): accuracy {r['device_accuracy']:.4f}, "
                     f"{r['mismatches']} outputs differ from the host, peak heap {r['peak_heap_bytes']:,} bytes, "
                     f"{r['wall_s']:.3f} s")
    _emit(r, a.json, "\n".join(lines))


def cmd_demo(a):
    from microdx import demo

    r = demo.run(board=a.board, out_dir=a.out)
    _emit(r, a.json, demo.format_report(r))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="microdx", description="Compress models and stream them on MicroPython boards.")
    p.add_argument("--version", action="version", version=f"microdx {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="model file (.npz, .onnx) -> .dxb blob")
    c.add_argument("src")
    c.add_argument("-o", "--out", required=True, help="output .dxb path")
    c.add_argument("--calib", help="data .npz of representative inputs (x, optional y) for int8 calibration")
    c.add_argument("--float", action="store_true", help="keep float32 weights (no quantization)")
    c.set_defaults(func=cmd_convert)

    i = sub.add_parser("inspect", help="layers, sizes, MACs and RAM of a blob")
    i.add_argument("blob")
    i.set_defaults(func=cmd_inspect)

    r = sub.add_parser("run", help="run a blob on an emulated board (MicroPython unix port)")
    r.add_argument("blob")
    r.add_argument("--input", required=True, help="data .npz with x (N, features)")
    r.add_argument("--budget", type=int, help="udx.Model RAM budget in bytes")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("eval", help="accuracy on the host reference and, with --device, the emulated board")
    e.add_argument("blob")
    e.add_argument("--data", required=True, help="data .npz with x and y")
    e.add_argument("--device", action="store_true", help="also run on the emulated board")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("demo", help="train, convert and run a speaker-ID model on an emulated board")
    d.add_argument("--out", help="keep the model, data and blob in this folder")
    d.set_defaults(func=cmd_demo, board="rp2040")

    for s in (i, r, e, d):
        s.add_argument("--json", action="store_true", help="print JSON")
    for s in (r, e):
        s.add_argument("--board", default="rp2040", help="board profile (boards/*.json), default rp2040")
        s.add_argument("--heap", help="override the board's heap, e.g. 64K")
    c.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--board", default="rp2040", help="board profile to emulate, default rp2040")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except DeviceError as e:
        print(f"microdx: device refused: {e}", file=sys.stderr)
        return 2
    except (MicrodxError, FileNotFoundError) as e:
        print(f"microdx: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # e.g. `microdx run ... | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
