"""Precision scaling: int16 weights in int8 models and float16 storage in float ones, mixed per layer; every
kind on the MicroPython unix port in tiles that do not divide the layer (Cortex-M3: tests/test_qemu_m3.py)."""
import numpy as np
import pytest

from microdx import blob_reader, blob_writer, emulator, ram, reference
from microdx.errors import QuantizationError
from microdx.optimizers import get, parse_recipe
from microdx.quantize import float_graph, quantize_graph
from microdx.synthetic import random_graph

RNG = np.random.default_rng(16)


def _apply(graph, recipe):
    for step in parse_recipe(recipe):
        graph = step.apply(graph).graph
    return graph


def _round_trip(graph, tmp_path, name="m.dxb"):
    size = blob_writer.write(graph, tmp_path / name)
    return blob_reader.read(tmp_path / name).graph, size


@pytest.mark.parametrize("sizes, budget_extra", [([65, 33, 7], 0), ([64, 40, 5], 131), ([200, 19, 3], 1000)])
def test_int16_weights_are_bit_exact_on_the_device_in_tiles(tmp_path, sizes, budget_extra):
    g = _apply(random_graph(sizes, seed=sizes[0]), "int16")
    x = RNG.normal(size=(30, sizes[0]))
    q, _ = quantize_graph(g, x)
    assert [layer.kind for layer in q.layers] == ["dense16", "dense16"]
    back, size = _round_trip(q, tmp_path)
    assert size > 2 * sum(a * b for a, b in zip(sizes, sizes[1:]))       # 2 bytes per weight
    xin = np.vstack([reference.prepare_input(back, x), np.full((1, sizes[0]), -128), np.full((1, sizes[0]), 127),
                     np.tile([-128, 127], sizes[0])[None, :sizes[0]]]).astype(np.int8)
    budget = ram.plan(back)["min_budget"] + budget_extra   # one-row tiles, and tiles that do not divide the rows
    run = emulator.run(tmp_path / "m.dxb", xin, heap=96 * 1024, budget=budget)
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin))


def test_int16_bounds_a_row_by_its_l1_norm_so_wide_layers_stay_inside_int32():
    """1,500 inputs with large weights, and the inputs that drive every row's sum to its extreme."""
    w = RNG.normal(size=(6, 1500)) * 3
    g = random_graph([1500, 6], seed=1)
    g.layers[0].tensors["w"] = w.astype(np.float32)
    q, _ = quantize_graph(_apply(g, "int16"), RNG.normal(size=(20, 1500)))
    w_q = q.layers[0].tensors["w"].astype(np.int64)
    assert (128 * np.abs(w_q).sum(axis=1) + np.abs(q.layers[0].tensors["b"].astype(np.int64))).max() < 2 ** 31
    xin = np.vstack([np.where(w_q >= 0, 127, -128), np.where(w_q >= 0, -128, 127)]).astype(np.int8)
    out = reference.run(q, xin)                                         # asserts the int32 contract inside
    assert out.shape == (12, 6)


def test_int16_rounds_weights_far_finer_than_int8():
    g = random_graph([80, 30, 4], seed=3)
    x = RNG.normal(size=(50, 80))
    errors = {}
    for recipe in ("int16", None):
        q, _ = quantize_graph(_apply(g, recipe) if recipe else g, x)
        layer, f = q.layers[0], g.layers[0].tensors["w"].astype(np.float64)
        w = layer.tensors["w"].astype(np.float64) - (128 if layer.kind == "dense" else 0)
        row_scale = np.abs(f).max(axis=1) / np.abs(w).max(axis=1)
        errors[recipe] = np.linalg.norm(w * row_scale[:, None] - f) / np.linalg.norm(f)
    assert errors["int16"] < errors[None] / 100


def test_mixed_precision_per_layer(tmp_path):
    g = random_graph([40, 30, 20, 5], seed=4)
    x = RNG.normal(size=(40, 40))
    q, _ = quantize_graph(_apply(g, "int16:layers=fc0+fc2,kmeans:bits=3:layers=fc1:min_inputs=1"), x)
    assert [layer.kind for layer in q.layers] == ["dense16", "codebook", "dense16"]
    back, _ = _round_trip(q, tmp_path)
    xin = reference.prepare_input(back, x)
    run = emulator.run(tmp_path / "m.dxb", xin, heap=96 * 1024, budget=ram.plan(back)["min_budget"] + 77)
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin))


def test_int16_then_kmeans_shares_again_and_kmeans_then_int16_does_not():
    g = random_graph([40, 20, 5], seed=5)
    x = RNG.normal(size=(20, 40))
    assert quantize_graph(_apply(g, "kmeans:bits=3,int16"), x)[0].layers[0].kind == "dense16"
    assert quantize_graph(_apply(g, "int16,kmeans:bits=3"), x)[0].layers[0].kind == "codebook"


def test_f16_is_lossless_on_weights_float16_holds_and_halves_the_blob(tmp_path):
    g = random_graph([48, 24, 6], seed=6)
    for layer in g.layers:
        layer.tensors["w"] = layer.tensors["w"].astype(np.float16).astype(np.float32)
    result = get("f16").apply(g)
    x = RNG.normal(size=(10, 48))
    np.testing.assert_array_equal(reference.run_float(result.graph, x), reference.run_float(g, x))
    assert [r["relative_error"] for r in result.report["layers"]] == [0.0, 0.0]
    _, full = _round_trip(g, tmp_path, "f32.dxb")
    back, half = _round_trip(float_graph(result.graph), tmp_path, "f16.dxb")
    assert [layer.kind for layer in back.layers] == ["dense16", "dense16"]
    weights = 48 * 24 + 24 * 6
    assert [layer.tensors["w"].nbytes for layer in back.layers] == [2 * 48 * 24, 2 * 24 * 6]
    assert abs((full - half) - 2 * weights) <= 16     # 2 bytes per weight saved; biases stay float32
    np.testing.assert_array_equal(reference.run(back, x), reference.run(float_graph(result.graph), x))


@pytest.mark.parametrize("sizes, extra", [([33, 17, 5], 0), ([34, 20, 4], 6), ([65, 50, 3], 190)])
def test_f16_runs_on_the_device_in_tiles(tmp_path, sizes, extra):
    """Odd and even input counts (halves padded to whole floats), one-row tiles and tiles that do not divide."""
    g = float_graph(_apply(random_graph(sizes, seed=sizes[1]), "f16:layers=fc0"))
    assert [layer.kind for layer in g.layers] == ["dense16", "dense"]     # mixed: float16 then float32
    back, _ = _round_trip(g, tmp_path)
    x = RNG.normal(size=(12, sizes[0])).astype(np.float32)
    run = emulator.run(tmp_path / "m.dxb", x, heap=96 * 1024, budget=ram.plan(back)["min_budget"] + extra)
    np.testing.assert_allclose(run.outputs, reference.run(back, x), rtol=1e-5, atol=1e-5)


def test_f16_relative_error_is_reported_and_small():
    result = get("f16").apply(random_graph([64, 32, 4], seed=7))
    assert all(0 < r["relative_error"] < 1e-3 for r in result.report["layers"])
    assert "float16" in result.report["notes"][0]


def test_f16_in_an_int8_blob_is_refused():
    g = _apply(random_graph([20, 8, 3], seed=8), "f16")
    with pytest.raises(QuantizationError, match="--float"):
        quantize_graph(g, RNG.normal(size=(10, 20)))
