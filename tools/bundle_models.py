"""Build and measure the bundled models (models/<name>/, microdx.bundled): convert every variant of bundle.json
from the committed float source and calibration rows, measure it (host and emulated-board accuracy, mismatches,
heap, flash fit, QEMU instruction counts, estimated latency; with --data, the device front-end on the FSDD test
recordings) and write results.json and MODEL.md.

    python tools/bundle_models.py                 # every model: about 10 minutes on 2 cores (QEMU dominates)
    python tools/bundle_models.py --only kws-digits --data ../shared/data/fsdd
    python tools/bundle_models.py --measure-only  # keep the committed blobs, measure again

The float sources come from the training tools (tools/train_fsdd.py, tools/train_jvowels.py, tools/train_har.py).
"""
import argparse
import sys
import time
from pathlib import Path

from microdx import bundled
from microdx.datasets import fsdd


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", action="append", help="a model's folder name (repeatable); default: all")
    p.add_argument("--data", type=Path, default=fsdd.DEFAULT, help="FSDD folder (holding recordings/) for the "
                   "audio check; skipped when absent")
    p.add_argument("--measure-only", action="store_true", help="measure the committed blobs, do not convert")
    a = p.parse_args()
    audio = a.data if (a.data / "recordings").is_dir() else None
    for name in a.only or bundled.names():
        t0 = time.time()
        if not a.measure_only:
            bundled.build(name, fsdd_path=audio)
        r = bundled.measure(name, fsdd=audio)
        bundled.write_results(name, r)
        bundled.write_card(name, r)
        print(f"{name}: results.json and MODEL.md written ({time.time() - t0:.0f} s)")
    (bundled.paths.repo_dir("models") / "README.md").write_text(bundled.index())
    return 0


if __name__ == "__main__":
    sys.exit(main())
