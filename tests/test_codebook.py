"""k-means weight sharing and the codebook int8 layer: lossless when values are few, packed indices round-trip,
bit-exact on the device in tiles for every index width."""
import numpy as np
import pytest

from microdx import blob_reader, blob_writer, emulator, reference
from microdx.ir import canonicalize
from microdx.ops import codebook
from microdx.optimizers import get
from microdx.quantize import quantize_graph
from microdx.synthetic import random_graph

RNG = np.random.default_rng(41)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6])
def test_pack_round_trip(bits):
    index = RNG.integers(0, 2 ** bits, size=(7, 37))
    packed = codebook.pack(index, bits)
    assert packed.shape == (7, codebook.stride(37, bits)) and not packed[:, -1].any()
    np.testing.assert_array_equal(codebook.unpack(packed, 37, bits), index)


def test_kmeans_with_few_distinct_values_is_lossless():
    levels = np.array([-0.5, -0.1, 0.2, 0.7])
    g = canonicalize("m", (30,), [("dense", "fc", {"w": RNG.choice(levels, size=(20, 30)), "b": RNG.normal(size=20)}),
                                  ("relu", "r", {}), ("dense", "out", {"w": RNG.choice(levels, size=(5, 20))})])
    result = get("kmeans", bits=2, min_inputs=1).apply(g)
    x = RNG.normal(size=(10, 30))
    np.testing.assert_array_equal(reference.run_float(result.graph, x), reference.run_float(g, x))
    assert [r["relative_error"] for r in result.report["layers"]] == [0.0, 0.0]


def test_kmeans_reaches_the_requested_number_of_values():
    result = get("kmeans", bits=3).apply(random_graph([40, 30, 5], seed=2))
    w = result.graph.layers[0].tensors["w"]
    assert len(np.unique(w)) == 8 and result.report["layers"][0]["relative_error"] < 0.3


@pytest.mark.parametrize("bits, sizes, budget", [(2, [40, 33, 5], None), (3, [64, 50, 7], 400), (5, [30, 21, 4], 230),
                                                 (6, [300, 20, 3], 2200)])
def test_codebook_int8_is_bit_exact_on_the_device(tmp_path, bits, sizes, budget):
    g = get("kmeans", bits=bits, min_inputs=1).apply(random_graph(sizes, seed=bits)).graph
    x = np.random.default_rng(bits).normal(size=(30, sizes[0]))
    q, _ = quantize_graph(g, x)
    assert q.layers[0].kind == "codebook"     # a layer stays dense where its codebook would not be smaller
    blob_writer.write(q, tmp_path / "m.dxb")
    back = blob_reader.read(tmp_path / "m.dxb").graph
    xin = np.vstack([reference.prepare_input(back, x), np.full((1, sizes[0]), -128), np.full((1, sizes[0]), 127)])
    run = emulator.run(tmp_path / "m.dxb", xin.astype(np.int8), heap=96 * 1024, budget=budget)
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin.astype(np.int8)))
