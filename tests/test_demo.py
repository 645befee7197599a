"""`microdx demo`: a real model trained on real data, converted, and run on an emulated RP2040."""
import json
import shutil
import subprocess


def test_demo_device_equals_host(tmp_path):
    exe = shutil.which("microdx")
    assert exe, "console script missing: pip install -e '.[dev]'"
    proc = subprocess.run([exe, "demo", "--json", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["test"] == 370 and r["train"] == 270
    assert r["mismatches"] == 0
    assert r["device_accuracy"] == r["accuracy"]
    assert r["float_accuracy"] > 0.9 and r["accuracy"] > r["float_accuracy"] - 0.02
    assert r["peak_heap_bytes"] < r["heap_bytes"] == 192 * 1024
    assert r["blob_bytes"] == (tmp_path / "jvowels_mlp.dxb").stat().st_size


def test_demo_text_report(capsys):
    from microdx import cli

    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "outputs differing from host: 0/370" in out and "int8 accuracy (emulated rp2040" in out
