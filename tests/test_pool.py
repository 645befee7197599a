"""Average and max pooling: the float ops against onnxruntime (padding excluded from the average, as TFLite does),
the int8 average's rounding, and a CNN with both pools bit-exact on the device with both backends (the Cortex-M0
run is in tests/test_backends.py)."""
import numpy as np
import pytest

from helpers import open_each, rewrite_header
from microdx import blob_reader, blob_writer, emulator, errors, reference
from microdx.ir import Layer, canonicalize, layer_shapes
from microdx.ops import pool
from microdx.quantize import quantize_graph

RNG = np.random.default_rng(17)


@pytest.mark.parametrize("kind, onnx_op", [("maxpool2d", "MaxPool"), ("avgpool2d", "AveragePool")])
@pytest.mark.parametrize("kernel, stride, pad", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 2), (2, 1), (1, 1, 0, 1))])
def test_pool_forward_equals_onnxruntime(kind, onnx_op, kernel, stride, pad):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    layer = Layer(kind, "p", "f32", {}, {"in_shape": (9, 7, 3), "kernel": kernel, "stride": stride, "pad": pad})
    extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
    node = helper.make_node(onnx_op, ["x"], ["y"], kernel_shape=list(kernel), strides=list(stride),
                            pads=[pad[0], pad[2], pad[1], pad[3]], **extra)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 9, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                .SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(2, 9, 7, 3)).astype(np.float32)
    expected = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(pool.forward_float(layer, x), expected, rtol=1e-6, atol=1e-6)


def test_int8_average_rounds_half_away_from_zero_over_real_cells():
    layer = Layer("avgpool2d", "p", "i8", {}, {"in_shape": (3, 3, 1), "kernel": (2, 2), "stride": (2, 2),
                                                "pad": (0, 1, 0, 1), "zero": 0})
    x = RNG.integers(-128, 128, size=(300, 3, 3, 1))
    got = pool.forward_i8(layer, x).astype(np.int64)
    for n, (r, c), cells in ((0, (0, 0), x[:, 0:2, 0:2]), (1, (1, 1), x[:, 2:3, 2:3]), (2, (0, 1), x[:, 0:2, 2:3])):
        exact = cells.reshape(len(x), -1).sum(axis=1) / cells[0].size
        np.testing.assert_array_equal(got[:, r, c, 0], np.sign(exact) * np.floor(np.abs(exact) + 0.5))


def _pooled_cnn(kind):
    ops = [("conv2d", "c", {"w": RNG.normal(size=(6, 3, 3, 2)) / 3, "b": RNG.normal(size=6) * 0.1,
                            "pad": np.array([1, 1, 1, 1])}), ("relu", "r", {}),
           (kind, "p", {"kernel": np.array([3, 2]), "stride": np.array([2, 2]), "pad": np.array([1, 1, 0, 1])}),
           ("flatten", "f", {})]
    n = int(np.prod(layer_shapes(canonicalize("p", (11, 9, 2), ops))[-1][1]))
    return canonicalize("p", (11, 9, 2), ops + [("dense", "d", {"w": RNG.normal(size=(4, n)) / 5})])


@pytest.mark.parametrize("kind", ["maxpool2d", "avgpool2d"])
def test_pooled_cnn_bit_exact_with_both_backends_and_bad_headers_refused(tmp_path, kind):
    g = _pooled_cnn(kind)
    x = RNG.normal(size=(30, 11, 9, 2))
    q, _ = quantize_graph(g, x)
    assert [layer.kind for layer in q.layers] == ["conv2d", kind, "dense"]
    blob_writer.write(q, tmp_path / "p.dxb")
    xin = np.vstack([reference.prepare_input(q, x[:4]), np.full((1, 198), -128, np.int8)])
    for backend in ("viper", "python"):
        run = emulator.run(tmp_path / "p.dxb", xin, backend=backend)
        np.testing.assert_array_equal(run.outputs, reference.run(q, xin), err_msg=backend)
    f32 = tmp_path / "f.dxb"
    blob_writer.write(g, f32)
    xf = x[:3].reshape(3, -1).astype(np.float32)
    np.testing.assert_allclose(emulator.run(f32, xf).outputs, reference.run(g, xf), rtol=1e-5, atol=1e-5)
    bad = rewrite_header((tmp_path / "p.dxb").read_bytes(), lambda h: h["layers"][1].update(out=[6, 5, 5]))
    with pytest.raises(errors.FormatError, match="keeps the channels"):
        blob_reader.parse(bad)
    (tmp_path / "bad.dxb").write_bytes(bad)
    out = open_each([tmp_path / "bad.dxb"], tmp_path, 256 * 1024)
    assert out[0].get("error") == "FormatError" and "keeps the channels" in out[0]["message"], out
