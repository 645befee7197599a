"""Benchmark the streamed int8 dense kernel on the MicroPython unix port against the numpy reference.

    python tools/bench_dense.py [--json out.json] [--repeat 3]

Reports, per layer shape, device ns per MAC (pure-Python kernel, udx precompiled with mpy-cross, weights streamed
through a 16 KB scratch) and the ratio to the host numpy reference (which also checks int32 bounds) measured in
the same run. The unix port on a PC says nothing absolute about MCU speed; the ratios are what later kernels
(viper, ulab) are compared by.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from microdx import blob_writer, emulator, reference
from microdx.synthetic import random_int8

SHAPES = [(64, 64), (256, 256), (650, 1000)]


def bench(n, m, repeat, count=4, budget=16 * 1024):
    g, _ = random_int8([n, m], seed=n + m, n_calib=16)
    x = np.random.default_rng(0).integers(-128, 128, size=(count, n)).astype(np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        blob = Path(tmp) / "b.dxb"
        blob_writer.write(g, blob)
        device = min(emulator.run(blob, x, heap=256 * 1024, budget=budget).stats["wall_s"] for _ in range(repeat))
    host = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        reference.run(g, x)
        host = min(host, time.perf_counter() - t0)
    macs = n * m * count
    return {"shape": [n, m], "inferences": count, "device_ns_per_mac": 1e9 * device / macs,
            "host_numpy_ns_per_mac": 1e9 * host / macs, "device_over_host": device / host}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--repeat", type=int, default=3, help="runs per shape; the fastest is kept")
    args = ap.parse_args()
    rows = [bench(n, m, args.repeat) for n, m in SHAPES]
    print(f"{'shape':>10} {'device ns/MAC':>14} {'numpy ns/MAC':>13} {'device/numpy':>13}")
    for r in rows:
        print(f"{r['shape'][0]:>4}x{r['shape'][1]:<5} {r['device_ns_per_mac']:>14.1f} {r['host_numpy_ns_per_mac']:>13.2f} "
              f"{r['device_over_host']:>13.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"kernel": "dense i8, pure Python", "results": rows}, indent=2))


if __name__ == "__main__":
    main()
