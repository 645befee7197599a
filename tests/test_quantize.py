"""int8 quantization and the host integer reference."""
import numpy as np
import pytest


from microdx.synthetic import random_graph, random_int8
from microdx import reference
from microdx.errors import InputShapeError, QuantizationError
from microdx.ir import canonicalize
from microdx.ops import dense
from microdx.quantize import act_qparams, quantize_graph


def test_int8_tracks_float():
    g = random_graph([40, 64, 32, 10], seed=3)
    x = np.random.default_rng(4).normal(size=(500, 40))
    q, _ = quantize_graph(g, x[:200])
    f = reference.run_float(g, x[200:])
    i = reference.run(q, x[200:]).astype(np.float64)
    scale, zero = q.output_q
    assert np.mean(f.argmax(1) == i.argmax(1)) > 0.9
    # dequantized logits within a few output steps of the float ones
    assert np.percentile(np.abs((i - zero) * scale - f), 95) < 6 * scale


def test_act_qparams_cover_zero_and_range():
    s, z = act_qparams(0.5, 3.0)       # range is widened to include 0
    assert (-128 - z) * s == pytest.approx(0.0, abs=s) and (127 - z) * s == pytest.approx(3.0, abs=s)
    assert act_qparams(0.0, 0.0) == (1.0, -128)


def test_weights_offset_binary_and_bias_folded():
    q, x = random_int8([8, 5], seed=1)
    layer = q.layers[0]
    assert layer.tensors["w"].dtype == np.uint8 and layer.tensors["w"].min() >= 1   # int8 in [-127, 127] + 128
    assert layer.tensors["b"].dtype == np.int32 and layer.tensors["q"].dtype == np.uint32


def test_too_wide_layer_is_refused():
    n = 50_000   # worst-case accumulator (255*128 + 128*128) * n exceeds int32
    g = canonicalize("wide", (n,), [("dense", "fc", {"w": np.ones((1, n)) * 0.01, "b": np.zeros(1)})])
    with pytest.raises(QuantizationError, match="int32 accumulator holds at most 32,896"):
        quantize_graph(g, np.random.default_rng(0).normal(size=(4, n)))


def test_reference_asserts_int32_on_a_hand_made_layer():
    q, _ = random_int8([4, 3], seed=2)
    layer = q.layers[0]
    layer.tensors["b"] = np.full(3, 2**31 - 1, dtype=np.int32)
    with pytest.raises(AssertionError, match="leaves int32"):
        dense.forward_i8(layer, np.full((1, 4), -128, dtype=np.int8))


def test_multiplier_widening_is_reported():
    # y = x0 - x1 with x0 ~= x1: the output range is tiny, so M = s_x*s_w/s_y would exceed 1/8
    g = canonicalize("cancel", (2,), [("dense", "fc", {"w": np.array([[1.0, -1.0]]), "b": np.zeros(1)})])
    a = np.random.default_rng(0).normal(size=(100, 1))
    x = np.hstack([a, a + 1e-3 * np.random.default_rng(1).normal(size=(100, 1))])
    q, notes = quantize_graph(g, x)
    assert any("widened" in n for n in notes)
    reference.run(q, x)   # still inside the integer contract


def test_reference_input_checks():
    q, _ = random_int8([6, 3])
    with pytest.raises(InputShapeError, match="expects"):
        reference.run(q, np.zeros((2, 5)))
    with pytest.raises(InputShapeError, match="int8 range"):
        reference.run(q, np.full((1, 6), 300))
