"""CLI options: strict JSON everywhere, one size syntax, --limit, --help listing the boards, progress reports."""
import json
import subprocess
import sys

import numpy as np
import pytest

from microdx import blob_writer, boards, cli, data, emulator
from microdx.errors import MicrodxError
from microdx.ir import canonicalize
from microdx.synthetic import random_int8


def strict_loads(text):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("opts")
    g, x = random_int8([12, 20, 3], seed=4)
    blob_writer.write(g, d / "m.dxb")
    data.save(d / "x.npz", x[:10], np.arange(10) % 3)
    data.save(d / "unlabelled.npz", x[:5])
    # a float model that overflows float32: outputs are Inf on the host and on the device
    huge = canonicalize("huge", (2,), [("dense", "fc", {"w": np.full((2, 2), 1e30), "b": np.zeros(2)})])
    blob_writer.write(huge, d / "huge.dxb")
    data.save(d / "big_x.npz", np.full((2, 2), 1e20), np.array([0, 1]))
    return d


def test_every_json_output_is_strict(files, capsys):
    for argv in (["inspect", files / "m.dxb"], ["run", files / "m.dxb", "--input", files / "x.npz"],
                 ["eval", files / "m.dxb", "--data", files / "x.npz", "--device"],
                 ["eval", files / "m.dxb", "--data", files / "unlabelled.npz", "--device"],
                 ["run", files / "huge.dxb", "--input", files / "big_x.npz"],
                 ["eval", files / "huge.dxb", "--data", files / "big_x.npz", "--device"]):
        code, out, err = _main(capsys, *argv, "--json")
        assert code == 0, err
        strict_loads(out)


def test_nan_and_inf_become_null_with_a_note(files, capsys):
    r = strict_loads(_main(capsys, "run", files / "huge.dxb", "--input", files / "big_x.npz", "--json")[1])
    assert r["outputs"][0] == [None, None] and "NaN or Inf" in r["outputs_note"]
    r = strict_loads(_main(capsys, "eval", files / "huge.dxb", "--data", files / "big_x.npz", "--device",
                           "--json")[1])
    assert r["max_abs_diff"] is None and "NaN or Inf" in r["max_abs_diff_note"]
    r = strict_loads(_main(capsys, "eval", files / "m.dxb", "--data", files / "unlabelled.npz", "--json")[1])
    assert r["accuracy"] is None and "no labels" in r["accuracy_note"]
    assert cli._strict({"a": float("nan"), "b": [1.0, float("-inf")], "c": 2})[0] == {
        "a": None, "a_note": cli.NON_FINITE_NOTE, "b": [1.0, None], "b_note": cli.NON_FINITE_NOTE, "c": 2}


def test_one_size_syntax_for_heap_and_budget(files, capsys):
    code, out, err = _main(capsys, "run", files / "m.dxb", "--input", files / "x.npz", "--budget", "1K", "--heap",
                           "64K", "--json")
    r = strict_loads(out)
    assert code == 0 and r["heap_bytes"] == 65536 and r["budget_bytes"] <= 1024
    assert [boards.parse_bytes(s) for s in ("900", "32K", "32k", "32KB", "1M", " 2m ")] == [
        900, 32768, 32768, 32768, 1 << 20, 2 << 20]
    for bad in ("0", "-1", "-64K", "1.5M", "lots", "", "12G"):
        with pytest.raises(MicrodxError):
            boards.parse_bytes(bad)


def test_limit_takes_the_first_rows(files, capsys):
    r = strict_loads(_main(capsys, "run", files / "m.dxb", "--input", files / "x.npz", "--limit", "3", "--json")[1])
    assert len(r["outputs"]) == 3 and r["count"] == 3
    r = strict_loads(_main(capsys, "eval", files / "m.dxb", "--data", files / "x.npz", "--limit", "4", "--json")[1])
    assert r["count"] == 4
    r = strict_loads(_main(capsys, "eval", files / "m.dxb", "--data", files / "x.npz", "--limit", "99", "--json")[1])
    assert r["count"] == 10


def test_help_lists_the_boards_for_every_board_option():
    for command in ("convert", "inspect", "run", "eval", "demo"):
        out = subprocess.run([sys.executable, "-m", "microdx.cli", command, "--help"], capture_output=True,
                             text=True).stdout
        flat = " ".join(out.split())
        assert all(name in flat for name in boards.names()), (command, out)


def test_progress_is_reported_while_the_device_runs(files):
    x = np.zeros((250, 12), np.int8)
    seen = []
    emulator.run(files / "m.dxb", x, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 250 and len(seen) >= 100


def test_no_progress_bar_when_stderr_is_not_a_terminal(files):
    proc = subprocess.run([sys.executable, "-m", "microdx.cli", "eval", str(files / "m.dxb"), "--data",
                           str(files / "x.npz"), "--device"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""
