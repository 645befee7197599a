"""Magnitude pruning and the CSR-sparse int8 layer: stored only when it pays, bit-exact on the device in tiles,
refused when inconsistent, streamed inside a budget."""
import numpy as np
import pytest

from microdx import blob_reader, blob_writer, emulator, reference
from microdx.errors import FormatError
from microdx.ops import sparse
from microdx.optimizers import get
from microdx.quantize import quantize_graph
from microdx.synthetic import random_graph

RNG = np.random.default_rng(21)


def pruned_int8(sizes, sparsity, seed=0, n_calib=64):
    g = get("prune", sparsity=sparsity, min_inputs=1).apply(random_graph(sizes, seed)).graph
    x = np.random.default_rng(seed + 1).normal(size=(n_calib, sizes[0]))
    return quantize_graph(g, x)[0], x


def test_prune_zeroes_exactly_the_requested_fraction():
    g = random_graph([50, 40, 30])
    result = get("prune", sparsity=0.75).apply(g)
    for layer, before in zip(result.graph.layers, g.layers):
        w = layer.tensors["w"]
        assert np.sum(w == 0) == int(0.75 * w.size)
        kept = np.abs(before.tensors["w"][w != 0]).min()
        assert kept >= np.abs(before.tensors["w"][w == 0]).max()      # the smallest ones went


def test_sparse_only_where_it_pays():
    q, _ = pruned_int8([64, 48, 10], 0.3)
    assert [layer.kind for layer in q.layers] == ["dense", "dense"]        # 70% kept: CSR would be bigger
    q, _ = pruned_int8([64, 48, 10], 0.8)
    assert [layer.kind for layer in q.layers] == ["sparse", "sparse"]
    layer = q.layers[0]
    assert sparse.payload_bytes(48, 64, layer.attrs["nnz"]) < 48 * 64 + 8 * 48
    assert sparse.index_bytes(64) == 1 and sparse.index_bytes(300) == 2


@pytest.mark.parametrize("sizes, sparsity, budget", [
    ([64, 97, 10], 0.8, 600),          # u8 indices; 97 rows in tiles that do not divide it
    ([300, 50, 7], 0.9, 1700),         # u16 indices (300 inputs)
    ([40, 33, 5], 0.97, None),         # some rows keep nothing: empty rows
])
def test_sparse_int8_is_bit_exact_on_the_device(tmp_path, sizes, sparsity, budget):
    q, x = pruned_int8(sizes, sparsity, seed=len(sizes) + sizes[0])
    assert q.layers[0].kind == "sparse"
    blob_writer.write(q, tmp_path / "m.dxb")
    back = blob_reader.read(tmp_path / "m.dxb").graph
    xin = np.vstack([reference.prepare_input(back, x), np.full((1, sizes[0]), -128), np.full((1, sizes[0]), 127)])
    run = emulator.run(tmp_path / "m.dxb", xin.astype(np.int8), heap=96 * 1024, budget=budget)
    np.testing.assert_array_equal(run.outputs, reference.run(q, xin.astype(np.int8)))


def test_sparse_layer_larger_than_the_heap_streams_inside_the_budget(tmp_path):
    """A 2,000-row sparse layer of ~60 KB runs on a 64 KB heap: the heap holds udx, the header, the sparse kernel
    module and the 14,000-byte budget, never the layer: peak - udx - budget is the same fixed overhead (~5 KB on the
    64-bit unix port) for a layer of 200 rows and one of 2,000."""
    over = []
    for rows in (200, 2000):
        q, x = pruned_int8([128, rows, 10], 0.9, seed=3)
        blob_writer.write(q, tmp_path / f"m{rows}.dxb")
        layer = q.layers[0]
        payload = sparse.payload_bytes(rows, 128, layer.attrs["nnz"])
        xin = reference.prepare_input(q, x[:3])
        run = emulator.run(tmp_path / f"m{rows}.dxb", xin, heap=64 * 1024, budget=14000)
        np.testing.assert_array_equal(run.outputs, reference.run(q, xin))
        s = run.stats
        over.append(s["peak_heap_bytes"] - s["runtime_heap_bytes"] - s["budget_bytes"])
    assert payload > 58_000 and s["budget_bytes"] <= 14000
    assert max(over) < 6656, over   # measured 6,471 and 2,832 (6,055 before the in-place ROM path)


def _tamper(q, path, **changes):
    layer = q.layers[0]
    tensors = {**layer.tensors, **changes}
    bad = q.copy(layers=[layer.__class__(layer.kind, layer.name, layer.dtype, tensors, layer.attrs)] + q.layers[1:])
    blob_writer.write(bad, path)


def test_inconsistent_row_pointers_are_refused(tmp_path):
    q, x = pruned_int8([64, 20, 5], 0.8)
    ptr = q.layers[0].tensors["ptr"].copy()
    ptr[5], ptr[6] = ptr[6], ptr[5]                         # decreasing: CRC-valid, but not CSR
    _tamper(q, tmp_path / "bad.dxb", ptr=ptr)
    with pytest.raises(FormatError, match="sparse row pointers"):
        blob_reader.read(tmp_path / "bad.dxb")
    with pytest.raises(emulator.DeviceError, match="FormatError: sparse layer: row pointer"):
        emulator.run(tmp_path / "bad.dxb", reference.prepare_input(q, x[:1]), heap=64 * 1024)
