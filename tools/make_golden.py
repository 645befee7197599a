"""Regenerate tests/golden/: a tiny model, its calibration data, the .dxb blob, and expected int8 outputs.

    python tools/make_golden.py [--check]

The blob is what docs/format.md dissects byte by byte; tests check the packer still produces it exactly,
that the host reference and the device both reproduce the expected outputs, and that the doc's dump matches.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from microdx import blob_writer, data, reference
from microdx.importers import npz
from microdx.quantize import quantize_graph

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def build():
    """(model ops, calibration x, test x) of the golden model: dense 4->3 + ReLU, dense 3->2, softmax."""
    rng = np.random.default_rng(2026)
    ops = [("dense", {"w": rng.normal(size=(3, 4)).round(3), "b": rng.normal(size=3).round(3)}),
           ("relu", {}),
           ("dense", {"w": rng.normal(size=(2, 3)).round(3), "b": rng.normal(size=2).round(3)}),
           ("softmax", {})]
    calib = rng.normal(size=(32, 4)).round(3)
    test = np.concatenate([np.full((1, 4), -128), np.full((1, 4), 127), rng.integers(-128, 128, size=(14, 4))])
    return ops, calib, test.astype(np.int8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check the committed files are current")
    args = ap.parse_args()
    ops, calib, test = build()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    model = GOLDEN / "tiny_model.npz"
    if not args.check:
        npz.save(model, ops, labels=["no", "yes"], name="tiny")
        data.save(GOLDEN / "tiny_calib.npz", calib)
    graph, _ = quantize_graph(npz.load(model), data.load(GOLDEN / "tiny_calib.npz")[0])
    blob = blob_writer.pack(graph)
    expected = reference.run(graph, test)
    if args.check:
        same = blob == (GOLDEN / "tiny_i8.dxb").read_bytes()
        print("golden blob is current" if same else "golden blob differs from what the packer writes")
        return 0 if same else 1
    (GOLDEN / "tiny_i8.dxb").write_bytes(blob)
    np.savez(GOLDEN / "tiny_expected.npz", x=test, out=expected)
    print(f"wrote {GOLDEN}: blob {len(blob)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
