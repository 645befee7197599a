"""conv2d on the host: the float forward against onnxruntime's Conv (an independent implementation), the int8
reference, the blob format, import from .npz and the CLI, and convolution separation (exact on separable kernels).
The device kernels are tested in tests/test_conv_device.py."""
import json
import subprocess
import sys

import numpy as np
import pytest

from microdx import blob_reader, blob_writer, reference
from microdx.errors import UnsupportedOpError
from microdx.importers import npz
from microdx.ir import canonicalize, layer_shapes
from microdx.ops import conv2d
from microdx.optimizers import get
from microdx.quantize import quantize_graph

RNG = np.random.default_rng(23)


def conv_graph(shape=(12, 11, 3), out=8, kernel=(3, 3), stride=(1, 1), pad=(1, 1, 1, 1), classes=4, w=None):
    """conv (relu) -> flatten -> dense."""
    h, wd, c = shape
    w = RNG.normal(size=(out, *kernel, c)) / np.sqrt(np.prod(kernel) * c) if w is None else w
    ops = [("conv2d", "conv", {"w": w, "b": RNG.normal(size=out) * 0.1, "stride": np.array(stride),
                               "pad": np.array(pad)}), ("relu", "r", {}), ("flatten", "f", {})]
    g = canonicalize("cnn", shape, ops)
    n = int(np.prod(layer_shapes(g)[0][1]))
    return canonicalize("cnn", shape, ops + [("dense", "fc", {"w": RNG.normal(size=(classes, n)) / np.sqrt(n),
                                                               "b": np.zeros(classes)})])


@pytest.mark.parametrize("kernel, stride, pad", [((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 5), (2, 1), (0, 2, 1, 3)),
                                                 ((1, 1), (2, 2), (0, 0, 0, 0)), ((4, 2), (3, 2), (2, 1, 0, 1))])
def test_conv_forward_equals_onnxruntime(kernel, stride, pad):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = RNG.normal(size=(5, *kernel, 3)).astype(np.float32)
    b = RNG.normal(size=5).astype(np.float32)
    layer = canonicalize("c", (10, 9, 3), [("conv2d", "c", {"w": w, "b": b, "stride": np.array(stride),
                                                          "pad": np.array(pad)})]).layers[0]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=list(stride),
                            pads=[pad[0], pad[2], pad[1], pad[3]])     # ONNX: top, left, bottom, right
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 10, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w.transpose(0, 3, 1, 2).copy(), "w"),
                               numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(4, 10, 9, 3)).astype(np.float32)
    expected = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})[0].transpose(0, 2, 3, 1)
    got = conv2d.forward_float(layer, x)
    assert got.shape == expected.shape == (4, *conv2d.layer_out_shape(layer))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_int8_conv_follows_the_float_model_and_round_trips(tmp_path):
    g = conv_graph(stride=(2, 1), pad=(1, 0, 2, 1))
    x = RNG.normal(size=(200, 12, 11, 3))
    q, _ = quantize_graph(g, x)
    assert [layer.kind for layer in q.layers] == ["conv2d", "dense"]
    assert q.layers[0].attrs["in_zero"] == q.input_q[1]
    blob_writer.write(q, tmp_path / "c.dxb")
    back = blob_reader.read(tmp_path / "c.dxb").graph
    assert back.input_shape == (12, 11, 3) and layer_shapes(back) == layer_shapes(q)
    for name in ("kernel", "stride", "pad", "in_zero", "in_shape"):
        assert back.layers[0].attrs[name] == q.layers[0].attrs[name], name
    xin = reference.prepare_input(back, x)
    assert xin.shape == (200, 12 * 11 * 3)
    np.testing.assert_array_equal(reference.run(back, xin), reference.run(q, x.reshape(200, -1)))
    logits = reference.run(back, xin).astype(np.float64)
    s, z = back.output_q
    real = reference.run_float(g, x)
    assert np.abs(s * (logits - z) - real).max() < 0.1 * np.abs(real).max()     # a few int8 steps
    assert np.mean(logits.argmax(1) == real.argmax(1)) > 0.9


def test_padding_holds_the_input_zero_point():
    """An input that is all real zeros gives exactly the bias at every pixel, borders included, in int8 too."""
    g = conv_graph(shape=(6, 5, 2), out=3, pad=(2, 2, 2, 2), kernel=(3, 3))
    x = RNG.normal(size=(50, 6, 5, 2)) + 2.0              # a zero point far from -128
    q, _ = quantize_graph(g, x)
    conv = q.layers[0]
    zeros = reference.prepare_input(q, np.zeros((1, 6, 5, 2)))
    out = conv2d.forward_i8(conv, zeros.reshape(1, 6, 5, 2))
    assert (out == out[0, 0, 0]).all()                     # the same value everywhere: borders see real zeros


def test_separation_is_exact_on_a_separable_kernel_and_saves_macs():
    c, n, kh, kw, k = 4, 8, 3, 5, 2
    w = np.einsum("nwk,kch->nhwc", RNG.normal(size=(n, kw, k)), RNG.normal(size=(k, c, kh)))
    g = conv_graph(shape=(12, 11, c), out=n, kernel=(kh, kw), stride=(2, 3), pad=(1, 2, 2, 1), w=w)
    result = get("separate", rank=k).apply(g)
    row = result.report["layers"][0]
    assert row["rank"] == k and row["relative_error"] < 1e-6
    assert [layer.name for layer in result.graph.layers] == ["conv.sep_v", "conv.sep_h", "fc"]
    v, h = result.graph.layers[:2]
    assert v.attrs["kernel"] == (kh, 1) and h.attrs["kernel"] == (1, kw) and v.attrs["act"] is None
    assert h.attrs["act"] == "relu" and layer_shapes(result.graph)[1][1] == layer_shapes(g)[0][1]
    assert row["macs_after"] < row["macs_before"] / 3 and row["weights_after"] == k * (kh * c + kw * n)
    assert result.report["macs_after"] < result.report["macs_before"]
    x = RNG.normal(size=(6, 12, 11, c))
    np.testing.assert_allclose(reference.run_float(result.graph, x), reference.run_float(g, x), rtol=1e-4, atol=1e-5)


def test_separation_rank_by_energy_and_the_cases_it_leaves():
    g = conv_graph(shape=(10, 10, 6), out=16, kernel=(5, 5))
    full = get("separate", energy=1.0).apply(g).report["layers"][0]
    assert "skipped" in full and "saves nothing" in full["skipped"]      # full rank costs more than the conv
    part = get("separate", energy=0.6).apply(g)
    row = part.report["layers"][0]
    assert 1 <= row["rank"] < full["rank"] and row["kept_energy"] >= 0.6 and "skipped" not in row
    assert "separate conv 5x5 6->16: K=" in part.report["notes"][0]
    point = conv_graph(kernel=(1, 1), pad=(0, 0, 0, 0))
    assert get("separate", rank=1).apply(point).report["layers"] == []     # 1x1: nothing to separate
    with pytest.raises(Exception, match="exactly one of rank="):
        get("separate")


def test_separated_model_quantizes(tmp_path):
    g = get("separate", rank=3).apply(conv_graph(shape=(9, 8, 3), out=6, kernel=(3, 3))).graph
    x = RNG.normal(size=(64, 9, 8, 3))
    q, _ = quantize_graph(g, x)
    assert [layer.kind for layer in q.layers] == ["conv2d", "conv2d", "dense"]
    assert q.layers[1].attrs["in_zero"] == q.layers[0].attrs["zero"]    # the second conv pads with its input's zero
    blob_writer.write(q, tmp_path / "s.dxb")
    back = blob_reader.read(tmp_path / "s.dxb").graph
    np.testing.assert_array_equal(reference.run(back, reference.prepare_input(back, x)),
                                  reference.run(q, reference.prepare_input(q, x)))


@pytest.mark.parametrize("ops, message", [
    ([("conv2d", "c", {"w": np.ones((2, 3, 3, 3))}), ("dense", "d", {"w": np.ones((2, 50))})], "add a Flatten"),
    ([("conv2d", "c", {"w": np.ones((2, 3, 3, 4))})], "takes (H, W, 4) inputs but receives [6, 5, 3]"),
    ([("conv2d", "c", {"w": np.ones((2, 3, 3, 3)), "pad": np.array([3, 0, 0, 0])})], "smaller than the kernel"),
    ([("conv2d", "c", {"w": np.ones((2, 3, 3, 3)), "stride": np.array([0, 1])})], "stride must be 2 integers >= 1"),
    ([("conv2d", "c", {"w": np.ones((2, 9, 3, 3))})], "does not fit the padded input"),
])
def test_conv_import_errors_name_the_node(ops, message):
    with pytest.raises(UnsupportedOpError, match="node '[cd]'") as e:
        canonicalize("m", (6, 5, 3), ops)
    assert message in str(e.value)


def test_conv_npz_through_the_cli_with_separation(tmp_path):
    g = conv_graph(shape=(8, 8, 2), out=12, kernel=(3, 3))
    conv, fc = g.layers
    npz.save(tmp_path / "cnn.npz", [("conv2d", {**conv.tensors, "stride": np.array(conv.attrs["stride"]),
                                                "pad": np.array(conv.attrs["pad"])}), ("relu", {}), ("flatten", {}),
                                    ("dense", fc.tensors)], input_shape=(8, 8, 2), name="cnn")
    x = RNG.normal(size=(80, 8 * 8 * 2))
    y = reference.run_float(g, x).argmax(1)
    np.savez(tmp_path / "train.npz", x=x, y=y)

    def cli(*argv):
        proc = subprocess.run([sys.executable, "-m", "microdx.cli", *argv], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    report = json.loads(cli("convert", "cnn.npz", "-o", "s.dxb", "--calib", "train.npz", "--recipe",
                            "separate:energy=0.9", "--json"))
    assert report["optimizers"][0]["layers"][0]["rank"] >= 1
    assert report["optimizers"][0]["macs_after"] < report["optimizers"][0]["macs_before"]
    assert report["accuracy_calib"] > 0.5 and report["float_accuracy_calib"] == 1.0
    table = cli("inspect", "s.dxb")
    assert "conv2d0.sep_v" in table and "8x8x2" in table and "conv2d" in table
    float_report = json.loads(cli("convert", "cnn.npz", "-o", "f.dxb", "--float", "--json"))
    assert float_report["dtype"] == "f32"
    assert blob_reader.read(tmp_path / "f.dxb").graph.layers[0].kind == "conv2d"
