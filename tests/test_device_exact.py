"""The device (MicroPython unix port) gives exactly the host reference's integers, whatever the tiling."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import write_blob
from microdx.synthetic import random_graph, random_int8
from microdx import emulator, ram, reference


def extreme_inputs(n, rng, count=40):
    """All -128, all 127, alternating, and random int8 rows."""
    rows = [np.full(n, -128), np.full(n, 127), np.resize([-128, 127], n)]
    return np.vstack(rows + [rng.integers(-128, 128, size=(count, n))]).astype(np.int8)


@pytest.mark.parametrize("sizes,budget", [
    ([20, 33, 7], None),          # default scratch: each layer in one tile
    ([20, 33, 7], "min"),         # one output row per tile
    ([31, 17, 9, 5], 300),        # tiles that do not divide the rows
    ([64, 128, 10], 2000),
    ([1, 1], "min"),              # smallest possible layer
])
def test_int8_bit_exact(tmp_path, sizes, budget):
    g, _ = random_int8(sizes, seed=sum(sizes))
    blob = write_blob(tmp_path / "m.dxb", g)
    if budget == "min":
        budget = ram.plan(g)["min_budget"]
    x = extreme_inputs(sizes[0], np.random.default_rng(1))
    run = emulator.run(blob, x, board="rp2040", budget=budget)
    assert run.outputs.dtype == np.int8
    assert np.array_equal(run.outputs, reference.run(g, x))


@given(sizes=st.lists(st.integers(1, 48), min_size=2, max_size=4), seed=st.integers(0, 10_000),
       budget_frac=st.floats(0, 1))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_int8_bit_exact_random_models(tmp_path, sizes, seed, budget_frac):
    g, _ = random_int8(sizes, seed=seed)
    plan = ram.plan(g)
    budget = int(plan["min_budget"] + budget_frac * (plan["full_budget"] - plan["min_budget"]))
    blob = write_blob(tmp_path / "m.dxb", g)
    x = extreme_inputs(sizes[0], np.random.default_rng(seed), count=20)
    assert np.array_equal(emulator.run(blob, x, budget=budget).outputs, reference.run(g, x))


def test_float32_path_matches_to_tolerance(tmp_path):
    g = random_graph([24, 40, 6], seed=9)
    blob = write_blob(tmp_path / "f.dxb", g)
    x = np.random.default_rng(2).normal(size=(30, 24)).astype(np.float32)
    run = emulator.run(blob, x, budget=ram.plan(g)["min_budget"])
    ref = reference.run(g, x)
    assert run.outputs.dtype == np.float32
    np.testing.assert_allclose(run.outputs, ref, rtol=1e-4, atol=1e-5)
    assert np.array_equal(run.outputs.argmax(1), reference.run_float(g, x).argmax(1))


def test_host_ram_plan_matches_device(tmp_path):
    """microdx inspect's min_budget is exactly the smallest budget udx.Model accepts."""
    from microdx.errors import DeviceError

    for g in (random_int8([30, 50, 8], seed=3)[0], random_graph([30, 50, 8], seed=3)):
        blob = write_blob(tmp_path / "m.dxb", g)
        plan = ram.plan(g)
        x = reference.prepare_input(g, np.zeros((1, 30)))
        run = emulator.run(blob, x, budget=plan["min_budget"])
        assert run.stats["budget_bytes"] == plan["min_budget"]
        assert emulator.run(blob, x).stats["budget_bytes"] == plan["default_budget"]
        with pytest.raises(DeviceError, match="short by 1 bytes") as e:
            emulator.run(blob, x, budget=plan["min_budget"] - 1)
        assert e.value.kind == "BudgetError"


def test_py_sources_and_mpy_give_the_same_integers(tmp_path):
    """Users may copy the .py files instead of .mpy: same code, compiled on the device instead of by mpy-cross."""
    g, _ = random_int8([40, 30, 6], seed=21)
    blob = write_blob(tmp_path / "m.dxb", g)
    x = extreme_inputs(40, np.random.default_rng(5), count=10)
    ref = reference.run(g, x)
    assert np.array_equal(emulator.run(blob, x, board="rp2040", source=True).outputs, ref)
    assert np.array_equal(emulator.run(blob, x, board="rp2040").outputs, ref)


CLASSIFY = """
import sys, json, array, udx
m = udx.Model(sys.argv[1])
x = array.array('b' if m.dtype == 'i8' else 'f', bytes(m.n_in * (1 if m.dtype == 'i8' else 4)))
with open(sys.argv[2], 'rb') as f:
    while f.readinto(x):
        best, label = m.classify(x)
        print(json.dumps([best, label, m.probabilities(m.predict(x))]))
"""


@pytest.mark.parametrize("dtype", ["i8", "f32"])
def test_classify_and_probabilities_on_device(tmp_path, dtype):
    from helpers import run_mpy
    from scipy.special import softmax

    g = random_int8([10, 12, 4], seed=8)[0] if dtype == "i8" else random_graph([10, 12, 4], seed=8)
    g.labels = ["a", "b", "c", "d"]
    blob = write_blob(tmp_path / "m.dxb", g)
    x = reference.prepare_input(g, np.random.default_rng(3).normal(size=(25, 10)) * 2)
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    out = run_mpy(CLASSIFY, tmp_path, heap=64 * 1024, args=[blob, tmp_path / "x.bin"])
    ref = reference.run(g, x).astype(np.float64)
    if dtype == "i8":
        ref = g.output_q[0] * (ref - g.output_q[1])
    assert [o[0] for o in out] == list(np.argmax(reference.run(g, x), axis=1))
    assert [o[1] for o in out] == [g.labels[i] for i in np.argmax(reference.run(g, x), axis=1)]
    np.testing.assert_allclose([o[2] for o in out], softmax(ref, axis=1), rtol=1e-5, atol=1e-7)
