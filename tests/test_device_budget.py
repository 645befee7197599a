"""Peak heap is set by the budget, not the model: a model with weights far larger than the heap streams."""
import numpy as np

from helpers import write_blob
from microdx.synthetic import random_int8
from microdx import emulator, reference

HEAP = 64 * 1024


def test_model_4x_larger_than_heap_runs_in_64k(tmp_path):
    g, _ = random_int8([650, 1000, 1000, 10], seed=11, n_calib=32)
    weight_bytes = sum(layer.tensors["w"].nbytes for layer in g.layers)
    assert weight_bytes >= 4 * HEAP          # ~1.66 MB of int8 weights vs a 64 KB heap (25x)
    blob = write_blob(tmp_path / "big.dxb", g)
    x = np.random.default_rng(0).integers(-128, 128, size=(3, 650)).astype(np.int8)
    run = emulator.run(blob, x, board="rp2040", heap=HEAP, budget=16 * 1024)
    assert np.array_equal(run.outputs, reference.run(g, x))
    assert run.stats["heap_bytes"] == HEAP
    assert run.stats["peak_heap_bytes"] < HEAP
    # buffers stay inside the 16 KB budget; beyond code and buffers only the parsed header, per-layer plans
    # and the runner's input array remain (2.9 KB measured): heap sampled after every tile
    assert run.stats["budget_bytes"] <= 16 * 1024
    overhead = run.stats["peak_heap_bytes"] - run.stats["runtime_heap_bytes"] - run.stats["budget_bytes"]
    assert overhead < 5 * 1024, run.stats


def test_peak_heap_does_not_grow_with_model_size(tmp_path):
    peaks = {}
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 200)).astype(np.int8)
    for depth in (1, 6):
        g, _ = random_int8([200] + [300] * depth + [10], seed=depth, n_calib=16)
        blob = write_blob(tmp_path / f"d{depth}.dxb", g)
        run = emulator.run(blob, x, heap=HEAP, budget=8 * 1024)
        assert np.array_equal(run.outputs, reference.run(g, x))
        peaks[depth] = run.stats["peak_heap_bytes"]
    # six times the weights (about 6x 60 KB); the only growth allowed is the per-layer plan and header entries
    assert peaks[6] - peaks[1] < 3 * 1024, peaks
