"""The `microdx` command line, end to end (convert -> inspect -> run -> eval), through main() and the console script."""
import json
import subprocess
import sys

import numpy as np
import pytest


from microdx.synthetic import random_graph
from microdx import cli, data
from microdx.importers import npz


@pytest.fixture
def files(tmp_path):
    g = random_graph([64, 96, 5], seed=2)
    ops = [("dense", {"w": g.layers[0].tensors["w"], "b": g.layers[0].tensors["b"]}), ("relu", {}),
           ("dense", {"w": g.layers[1].tensors["w"], "b": g.layers[1].tensors["b"]}), ("softmax", {})]
    npz.save(tmp_path / "m.npz", ops, name="clitest")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 64))
    y = np.argmax(x @ g.layers[0].tensors["w"].T.clip(0) @ g.layers[1].tensors["w"].T, axis=1)  # any labels do
    data.save(tmp_path / "calib.npz", x[:40], y[:40])
    data.save(tmp_path / "test.npz", x[40:], y[40:])
    return tmp_path


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_inspect_run_eval(files, capsys):
    blob = files / "m.dxb"
    code, out, _ = run_cli(capsys, "convert", files / "m.npz", "-o", blob, "--calib", files / "calib.npz", "--json")
    report = json.loads(out)
    assert code == 0 and report["blob_bytes"] == blob.stat().st_size and report["dtype"] == "i8"
    assert report["compression"] > 3.0          # int8 weights vs float32, minus header and per-row params
    code, out, _ = run_cli(capsys, "inspect", blob, "--json")
    info = json.loads(out)
    assert [(x["in"], x["out"], x["macs"]) for x in info["layers"]] == [([64], [96], 6144), ([96], [5], 480)]
    assert info["layers"][0]["ram_min_bytes"] == 64 + 96 + 64 + 8
    code, out, _ = run_cli(capsys, "inspect", blob)
    assert "dense" in out and "RAM budget" in out
    code, out, _ = run_cli(capsys, "run", blob, "--board", "stm32f411", "--input", files / "test.npz", "--json")
    r = json.loads(out)
    assert code == 0 and len(r["outputs"]) == 20 and r["heap_bytes"] == 90 * 1024
    for key in ("runtime_heap_bytes", "peak_heap_bytes", "wall_s"):
        assert r[key] > 0
    code, out, _ = run_cli(capsys, "eval", blob, "--data", files / "test.npz", "--device", "--heap", "64K", "--json")
    r = json.loads(out)
    assert code == 0 and r["mismatches"] == 0 and r["device_accuracy"] == r["accuracy"] and r["heap_bytes"] == 65536
    assert {"accuracy", "device_accuracy", "mismatches", "blob_bytes", "runtime_heap_bytes", "peak_heap_bytes",
            "wall_s"} <= r.keys()


def test_float_conversion_runs_on_device(files, capsys):
    blob = files / "f.dxb"
    assert run_cli(capsys, "convert", files / "m.npz", "-o", blob, "--float")[0] == 0
    code, out, _ = run_cli(capsys, "eval", blob, "--data", files / "test.npz", "--device", "--json")
    r = json.loads(out)
    assert r["dtype"] == "f32" and r["max_abs_diff"] < 1e-4 and r["device_accuracy"] == r["accuracy"]


def test_errors_are_one_clear_line(files, capsys):
    code, _, err = run_cli(capsys, "convert", files / "m.npz", "-o", files / "x.dxb")
    assert code == 2 and "--calib" in err
    run_cli(capsys, "convert", files / "m.npz", "-o", files / "m.dxb", "--calib", files / "calib.npz")
    code, _, err = run_cli(capsys, "run", files / "m.dxb", "--board", "esp99", "--input", files / "test.npz")
    assert code == 2 and "unknown board 'esp99'" in err and "rp2040" in err
    data.save(files / "short.npz", np.zeros((2, 63)))
    code, _, err = run_cli(capsys, "run", files / "m.dxb", "--input", files / "short.npz")
    assert code == 2 and "short.npz: x has 63 features per row; the model expects 64" in err
    (files / "bad.dxb").write_bytes(b"uDXB\x07\x00" + bytes(10))
    code, _, err = run_cli(capsys, "inspect", files / "bad.dxb")
    assert code == 2 and "VersionError" in err


def test_console_script_is_installed(files):
    exe = subprocess.run([sys.executable, "-c", "import shutil; print(shutil.which('microdx') or '')"],
                         capture_output=True, text=True).stdout.strip()
    assert exe, "the 'microdx' console script is not on PATH: pip install -e '.[dev]'"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("microdx ")
