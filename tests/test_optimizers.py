"""Optimizers on known matrices, the recipe syntax, and factorized models bit-exact on the device."""
import numpy as np
import pytest

from microdx import blob_reader, blob_writer, emulator, reference
from microdx.errors import MicrodxError
from microdx.ir import canonicalize
from microdx.optimizers import get, parse_recipe
from microdx.optimizers.svd import choose_rank
from microdx.quantize import quantize_graph

RNG = np.random.default_rng(11)


def low_rank_graph(m=60, n=80, r=5, out=3):
    """dense (n -> m, exactly rank r) + ReLU, then dense m -> out."""
    w1 = RNG.normal(size=(m, r)) @ RNG.normal(size=(r, n)) / np.sqrt(n)
    ops = [("dense", "fc1", {"w": w1, "b": RNG.normal(size=m) * 0.1}), ("relu", "r", {}),
           ("dense", "fc2", {"w": RNG.normal(size=(out, m)) / np.sqrt(m), "b": np.zeros(out)})]
    return canonicalize("lowrank", (n,), ops)


@pytest.mark.parametrize("knob", [{"rank": 5}, {"energy": 0.999999}, {"error": 1e-5}])
def test_svd_recovers_an_exactly_rank_r_layer(knob):
    g = low_rank_graph()
    result = get("svd", **knob).apply(g)
    fc1 = result.report["layers"][0]
    assert fc1["rank"] == 5 and fc1["relative_error"] < 1e-6
    assert [layer.name for layer in result.graph.layers] == ["fc1.svd_a", "fc1.svd_b", "fc2"]
    assert [layer.attrs["act"] for layer in result.graph.layers] == [None, "relu", None]
    assert result.report["macs_after"] == 5 * (60 + 80) + 3 * 60 < result.report["macs_before"]
    x = RNG.normal(size=(30, 80))
    np.testing.assert_allclose(reference.run_float(result.graph, x), reference.run_float(g, x), rtol=1e-4, atol=1e-5)
    assert "skipped" in result.report["layers"][1]     # fc2 is 3x60: no rank saves anything


def test_svd_leaves_layers_where_it_saves_nothing():
    g = low_rank_graph(m=20, n=20, r=15)
    result = get("svd", energy=0.9999).apply(g)
    assert "saves nothing" in result.report["layers"][0]["skipped"]
    assert [layer.name for layer in result.graph.layers] == ["fc1", "fc2"]


def test_choose_rank_by_each_knob():
    s = np.array([4.0, 2.0, 1.0, 1.0])              # energies 16, 4, 1, 1 of 22
    assert choose_rank(s, energy=16 / 22) == 1 and choose_rank(s, energy=20 / 22 + 1e-9) == 3
    assert choose_rank(s, error=np.sqrt(2 / 22)) == 2 and choose_rank(s, error=0.0) == 4
    assert choose_rank(s, rank=9) == 4


def test_factorized_int8_model_is_bit_exact_on_the_device(tmp_path):
    g = get("svd", rank=5).apply(low_rank_graph()).graph
    x = RNG.normal(size=(40, 80))
    q, _ = quantize_graph(g, x)
    q = q.copy(recipe="svd:rank=5")
    blob_writer.write(q, tmp_path / "m.dxb")
    assert blob_reader.read(tmp_path / "m.dxb").graph.recipe == "svd:rank=5"
    xin = reference.prepare_input(q, x)
    run = emulator.run(tmp_path / "m.dxb", xin, heap=64 * 1024, budget=700)   # fc1.svd_b (80 rows) in tiles
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin))


@pytest.mark.parametrize("recipe, message", [
    ("svd", "exactly one of rank=, energy=, error="),
    ("svd:rank=4:energy=0.9", "exactly one of"),
    ("svd:rank=0", "positive integer"),
    ("svd:energy=1.5", "in (0, 1]"),
    ("svd:size=3", "no knob size; its knobs: rank, energy, error, bytes, min_inputs, layers"),
    ("svd:rank", "'rank' is not knob=value"),
    ("clean,,svd:rank=2", "empty step"),
    ("zip", "unknown optimizer 'zip'; known: clean, "),
    ("prune_units:sparsity=1", "must be in [0, 1)"),
])
def test_bad_recipes_are_named(recipe, message):
    with pytest.raises(MicrodxError) as e:
        parse_recipe(recipe)
    assert message in str(e.value)


def test_recipe_steps_and_values():
    steps = parse_recipe("clean, svd:rank=32:min_inputs=64")
    assert [s.name for s in steps] == ["clean", "svd"] and steps[1].get_params() == {"rank": 32, "min_inputs": 64}


def test_prune_units_hits_the_sparsity_and_keeps_the_output_layer():
    g = canonicalize("mlp", (20,), [("dense", "h1", {"w": RNG.normal(size=(40, 20)), "b": RNG.normal(size=40)}),
                                    ("relu", "r1", {}),
                                    ("dense", "h2", {"w": RNG.normal(size=(30, 40)), "b": RNG.normal(size=30)}),
                                    ("relu", "r2", {}),
                                    ("dense", "out", {"w": RNG.normal(size=(5, 30)), "b": RNG.normal(size=5)})])
    result = get("prune_units", sparsity=0.25).apply(g)
    shapes = [layer.tensors["w"].shape for layer in result.graph.layers]
    assert shapes == [(30, 20), (23, 30), (5, 23)]          # 10 of 40 and 7 of 30 hidden units removed
    assert [r["removed"] for r in result.report["layers"]] == [10, 7]
    assert result.report["bytes_after"] < result.report["bytes_before"]


def test_prune_units_removes_dead_units_exactly():
    """Units with (near-)zero incoming weights output act(bias), a constant: folding it into the next bias is exact."""
    w1 = RNG.normal(size=(12, 8))
    w1[[2, 5, 9]] = 1e-12                                     # three dead units, two with a positive bias
    b1 = RNG.normal(size=12)
    b1[[2, 5]] = [0.7, 1.3]
    g = canonicalize("mlp", (8,), [("dense", "h", {"w": w1, "b": b1}), ("relu", "r", {}),
                                   ("dense", "out", {"w": RNG.normal(size=(4, 12)), "b": np.zeros(4)})])
    result = get("prune_units", sparsity=0.25).apply(g)
    assert result.graph.layers[0].tensors["w"].shape == (9, 8)
    x = RNG.normal(size=(50, 8))
    np.testing.assert_allclose(reference.run_float(result.graph, x), reference.run_float(g, x), rtol=1e-5, atol=1e-6)


def test_dictionary_factorization_of_sparse_coded_weights():
    """W = C D with 4 nonzero codes per row over 24 atoms: the factorization reconstructs W closely, the codes layer
    becomes CSR in int8, and the device gives the host's integers."""
    from microdx import blob_writer

    d = RNG.normal(size=(24, 120))
    c = np.zeros((200, 24))
    for row in c:
        row[RNG.choice(24, 4, replace=False)] = RNG.normal(size=4)
    g = canonicalize("m", (120,), [("dense", "fc", {"w": c @ d / 10, "b": RNG.normal(size=200) * 0.1}),
                                   ("relu", "r", {}), ("dense", "out", {"w": RNG.normal(size=(4, 200)) / 14})])
    result = get("dict", atoms=24, nonzeros=4).apply(g)
    row = result.report["layers"][0]
    assert row["relative_error"] < 0.2 and row["estimated_bytes"] < row["dense_bytes"]
    assert [layer.name for layer in result.graph.layers] == ["fc.dict", "fc.codes", "out"]
    assert "skipped" in result.report["layers"][1]          # 4 x 200: a dictionary would not be smaller
    x = RNG.normal(size=(40, 120))
    q, _ = quantize_graph(result.graph, x)
    assert [layer.kind for layer in q.layers] == ["dense", "sparse", "dense"]
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as tmp:
        blob_writer.write(q, pathlib.Path(tmp) / "m.dxb")
        xin = reference.prepare_input(q, x)
        run = emulator.run(pathlib.Path(tmp) / "m.dxb", xin, heap=96 * 1024, budget=1500)
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin))


def test_svd_byte_budget_is_met_and_spent_where_the_energy_is():
    from microdx.optimizers.svd import int8_bytes

    g = low_rank_graph()                                   # fc1 60x80 of rank 5, fc2 3x60
    budget = int8_bytes(60, 80, 5) + int8_bytes(3, 60)     # room for fc1's exact rank and fc2 whole
    result = get("svd", bytes=budget).apply(g)
    fc1, fc2 = result.report["layers"]
    assert fc1["rank"] == 5 and fc1["relative_error"] < 1e-6 and "kept dense" in fc2["skipped"]
    q, _ = quantize_graph(result.graph, RNG.normal(size=(40, 80)))
    assert sum(t.nbytes for layer in q.layers for t in layer.tensors.values()) <= budget
    for budget in (800, 1500, 3000):                       # any budget: met, and nearly all of it used
        q, _ = quantize_graph(get("svd", bytes=budget).apply(g).graph, RNG.normal(size=(40, 80)))
        used = sum(t.nbytes for layer in q.layers for t in layer.tensors.values())
        assert budget - 200 < used <= budget, (budget, used)   # 200: more than one rank of either layer costs
    with pytest.raises(MicrodxError, match="rank 1 in every chosen layer already takes 723 bytes"):
        get("svd", bytes=300).apply(g)
    with pytest.raises(MicrodxError, match="exactly one of rank=, energy=, error=, bytes="):
        get("svd", bytes=300, rank=2)
