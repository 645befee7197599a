"""`microdx bench compression` on FSDD: at least 100x smaller than float32 with at most 1 point accuracy loss on the
held-out takes, and the emulated board gives the host's outputs. Skips without ../shared/data/fsdd."""
import json
import subprocess
import sys

import pytest

from microdx.datasets import fsdd

pytestmark = pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")


def test_speakerid_100x_within_1_point_bit_exact_on_device():
    out = subprocess.run([sys.executable, "-m", "microdx.cli", "bench", "compression", "--json"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert {"float32_bytes", "blob_bytes", "ratio", "float_accuracy", "compressed_accuracy", "device_accuracy",
            "recipe"} <= r.keys()
    assert r["float32_bytes"] == 4 * (650 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 6 + 6)
    assert r["ratio"] >= 100 and r["float32_bytes"] / r["blob_bytes"] >= 100
    assert r["float_accuracy"] - r["compressed_accuracy"] <= 0.01
    assert r["mismatches"] == 0 and r["device_accuracy"] == r["compressed_accuracy"] and r["test_clips"] == 300
    assert r["stm32f411_flash"]["fits"]
    assert all(c["matches_host"] for c in r["cortex_m"].values())     # qemu-m3/m0 when installed (CI installs them)
