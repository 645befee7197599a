"""Auto-fit (`convert --board B --data D --max-loss P`): a model too big for a board's flash is compressed until it
fits within the loss bound, or refused with the shortfall and the knob that would help."""
import json

import numpy as np

from microdx import blob_reader, cli, data, fit, reference
from microdx.importers import npz
from microdx.ir import canonicalize

RNG = np.random.default_rng(31)


def low_rank_model(tmp_path):
    """256 -> 400 (rank 8) -> 10: 106 KB of int8, more than stm32f411's 51 KB beside udx; SVD can shrink it ~losslessly."""
    w1 = RNG.normal(size=(400, 8)) @ RNG.normal(size=(8, 256)) / 16
    w2 = RNG.normal(size=(10, 400)) / 20
    ops = [("dense", {"w": w1, "b": RNG.normal(size=400) * 0.1}), ("relu", {}), ("dense", {"w": w2, "b": np.zeros(10)})]
    npz.save(tmp_path / "m.npz", ops, name="lowrank")
    g = canonicalize("m", (256,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(ops)])
    x = RNG.normal(size=(300, 256))
    data.save(tmp_path / "d.npz", x, reference.run_float(g, x).argmax(axis=1))
    return tmp_path


def test_autofit_shrinks_a_model_until_it_fits(tmp_path, capsys):
    m = low_rank_model(tmp_path)
    code = cli.main([str(a) for a in ["convert", m / "m.npz", "-o", m / "m.dxb", "--data", m / "d.npz", "--board",
                                      "stm32f411", "--max-loss", "1", "--json"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    r = json.loads(out)
    assert "svd" in r["recipe"] and r["loss_points"] <= 1.0 and r["fit"]["flash"]["fits"]
    assert r["blob_bytes"] < fit.flash(0, "stm32f411", {("dense", "i8")})["allowance_bytes"] < 106_000
    assert blob_reader.read(m / "m.dxb").graph.recipe == r["recipe"]


def test_autofit_says_when_it_cannot(tmp_path, capsys):
    m = low_rank_model(tmp_path)
    ops = [("dense", {"w": RNG.normal(size=(400, 256)) / 16, "b": np.zeros(400)}), ("relu", {}),
           ("dense", {"w": RNG.normal(size=(10, 400)) / 20, "b": np.zeros(10)})]
    npz.save(m / "full.npz", ops, name="fullrank")                    # no redundancy to remove for free
    x = RNG.normal(size=(300, 256))
    g = canonicalize("f", (256,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(ops)])
    data.save(m / "own.npz", x, reference.run_float(g, x).argmax(axis=1))
    code = cli.main([str(a) for a in ["convert", m / "full.npz", "-o", m / "f.dxb", "--data", m / "own.npz",
                                      "--board", "stm32f411", "--max-loss", "0"]])
    err = capsys.readouterr().err
    assert code == 2 and not (m / "f.dxb").exists()
    assert "BoardFitError: no recipe found fits stm32f411's flash within 0.0 points" in err
    assert "short by" in err and "--max-loss" in err
