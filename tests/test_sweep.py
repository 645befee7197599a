"""`microdx sweep` on a small model: a table (JSON, CSV) and a PNG, the Pareto front marked."""
import csv
import json

import numpy as np
import pytest

from microdx import cli, data, reference
from microdx.importers import npz
from microdx.synthetic import random_graph
from microdx.sweep import pareto


@pytest.fixture
def model(tmp_path):
    g = random_graph([24, 40, 4], seed=8)
    npz.save(tmp_path / "m.npz", [("dense", g.layers[0].tensors), ("relu", {}), ("dense", g.layers[1].tensors)])
    x = np.random.default_rng(9).normal(size=(80, 24))
    y = reference.run_float(g, x).argmax(axis=1)
    data.save(tmp_path / "d.npz", x, y)
    return tmp_path


def test_sweep_writes_table_and_plot(model, capsys):
    argv = ["sweep", model / "m.npz", "--data", model / "d.npz", "--out", model / "out", "--jobs", "2", "--json",
            "--recipe", "", "--recipe", "prune:sparsity=0.8", "--recipe", "prune_units:sparsity=0.5"]
    assert cli.main([str(a) for a in argv]) == 0
    r = json.loads(capsys.readouterr().out)
    rows = r["rows"]
    assert [row["recipe"] for row in rows] == ["(none)", "prune:sparsity=0.8", "prune_units:sparsity=0.5"]
    assert rows[0]["float_accuracy"] == 1.0 and rows[0]["accuracy"] > 0.7   # y: the float model's own predictions
    assert rows[1]["blob_bytes"] < rows[0]["blob_bytes"] and rows[2]["blob_bytes"] < rows[0]["blob_bytes"]
    with open(model / "out" / "sweep.csv") as f:
        assert [row["recipe"] for row in csv.DictReader(f)] == [row["recipe"] for row in rows]
    assert (model / "out" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((model / "out" / "sweep.json").read_text())["rows"] == rows


def test_pareto_front():
    rows = [{"blob_bytes": 10, "accuracy": 0.9}, {"blob_bytes": 20, "accuracy": 0.8}, {"blob_bytes": 30, "accuracy": 0.95},
            {"blob_bytes": 10, "accuracy": 0.9}]
    assert pareto(rows) == [True, False, True, True]
