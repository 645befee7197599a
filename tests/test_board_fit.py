"""Does a blob fit a board: flash (blob beside udx's .mpy files, in filesystem blocks) and heap (measured on the
MicroPython unix port); run/eval --device refuse a blob the board could not store unless --ignore-flash."""
import json

import numpy as np
import pytest

from microdx import blob_writer, cli, data, emulator, fit
from microdx.synthetic import random_int8


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    blob_writer.write(random_int8([120, 64, 32, 9], seed=0)[0], d / "small.dxb")   # the demo's shape, 12 KB
    blob_writer.write(random_int8([16, 3000, 4], seed=3)[0], d / "big.dxb")        # 85 KB
    data.save(d / "x16.npz", np.random.default_rng(0).normal(size=(4, 16)))
    return d


def _json(capsys, *argv):
    code = cli.main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_small_blob_fits_rp2040(blobs, capsys):
    r = _json(capsys, "inspect", blobs / "small.dxb", "--board", "rp2040")["fit"]
    mpy = fit.runtime_files({("dense", "i8")})    # an int8 dense blob needs no other kernel module on the board
    assert set(emulator.runtime_files()) - set(mpy) == {f"udx/{k}{v}.mpy" for k in ("sparse", "codebook", "dense16",
                                                                                    "conv2d", "dwconv2d", "gap", "pool", "act", "add")
                                                        for v in ("", "_viper")} | {"udx/dense_f32.mpy", "udx/conv2d_ulab.mpy"} \
        | fit.TFLITE_MODULES | fit.FRONTEND_MODULES   # TFLite's arithmetic (int8 .tflite layers, residual adds); audio
    assert r["flash"]["fits"] and r["flash"]["block_bytes"] == 4096
    armv6m = fit.runtime_files({("dense", "i8")}, "armv6m")   # what the Pico runs: its own native code, asm twins
    assert "udx/dense_asm.mpy" in armv6m and "udx/dense_asm.mpy" not in mpy
    assert r["flash"]["runtime_files_bytes"] == sum(-(-n // 4096) * 4096 for n in armv6m.values())   # whole blocks
    assert r["flash"]["blob_on_fs_bytes"] == -(-r["flash"]["blob_bytes"] // 4096) * 4096
    assert r["heap"]["fits"] and r["heap"]["peak_heap_bytes"] < r["heap"]["heap_bytes"] and r["advice"] == []
    cli.main(["inspect", str(blobs / "small.dxb"), "--board", "rp2040"])
    text = capsys.readouterr().out
    assert "board rp2040:" in text and "flash  fits" in text and "heap   fits" in text


def test_big_blob_is_short_of_flash_on_stm32f411(blobs, capsys):
    r = _json(capsys, "inspect", blobs / "big.dxb", "--board", "stm32f411")["fit"]
    f = r["flash"]
    blocks = sum(-(-n // 512) * 512 for n in fit.runtime_files({("dense", "i8")}, "armv7emsp").values())
    assert f["fits"] is False and f["runtime_files_bytes"] == blocks
    assert f["short_by_bytes"] == f["blob_on_fs_bytes"] - (65536 - blocks) > 0
    assert "more flash (" in r["advice"][0] and "rp2040" in r["advice"][0]
    assert r["heap"]["fits"]


def test_run_refuses_a_blob_the_board_cannot_store_unless_ignore_flash(blobs, capsys):
    assert cli.main(["run", str(blobs / "big.dxb"), "--board", "stm32f411", "--input", str(blobs / "x16.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microdx: BoardFitError: ") and "--ignore-flash" in err
    r = _json(capsys, "run", blobs / "big.dxb", "--board", "stm32f411", "--input", blobs / "x16.npz",
              "--ignore-flash")
    assert len(r["outputs"]) == 4 and r["heap_bytes"] == 90 * 1024


def test_heap_short_says_by_how_much_and_which_knob(blobs):
    """A 60 KB budget leaves stm32f411's 90 KB heap too little; the smallest budget fits, so lowering it helps."""
    r = fit.check(blobs / "big.dxb", "stm32f411", budget=60 * 1024)
    h = r["heap"]
    assert h["fits"] is False and h["short_by_bytes"] == h["smallest_heap_bytes"] - 90 * 1024 > 0
    assert emulator.runs_in(blobs / "big.dxb", h["smallest_heap_bytes"], 60 * 1024)
    assert any("lower --budget" in a for a in r["advice"])
    assert "short by" in fit.format_report(r)


def test_convert_checks_the_board(blobs, capsys):
    from microdx.importers import npz
    from microdx.synthetic import random_graph

    g = random_graph([16, 8, 3], seed=1)
    npz.save(blobs / "m.npz", [("dense", {"w": layer.tensors["w"], "b": layer.tensors["b"]}) for layer in g.layers])
    r = _json(capsys, "convert", blobs / "m.npz", "-o", blobs / "c.dxb", "--float", "--board", "stm32f411")
    assert r["fit"]["board"] == "stm32f411" and r["fit"]["flash"]["fits"] and r["fit"]["heap"]["fits"]


def test_boards_without_a_known_filesystem_are_not_checked(blobs):
    f = fit.flash(10**9, "unix")
    assert f["fits"] is None and "not checked" in f["note"]
    fit.require_flash(blobs / "big.dxb", "unix")   # no error
