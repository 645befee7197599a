"""Elementwise activations (relu6, tanh, sigmoid: kind "act", int8 lookup tables), the on-device softmax, free
reshapes and 1-D convs and pools (run as their 2-D kinds over a (1, L, C) view): float forward against onnxruntime,
the int8 tables within half an output step of the float function, the softmax inside int32 and keeping the
arg-max, and a model using all of them bit-exact on every device target present (unix port with viper and pure
Python, qemu-m3, qemu-m0, CircuitPython); bad headers and bad graphs refused with the reason."""
import numpy as np
import pytest

from microdx import blob_reader, blob_writer, emulator, qemu, reference
from microdx.errors import FormatError, UnsupportedOpError
from microdx.ir import Layer, canonicalize
from microdx.ops import act, softmax
from microdx.quantize import quantize_graph
from test_backends import CIRCUITPYTHON

RNG = np.random.default_rng(404)


def _onnx(node, x_shape):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[])
    return ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                .SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("func, onnx_op", [("tanh", "Tanh"), ("sigmoid", "Sigmoid"), ("relu6", "Clip")])
def test_float_activations_equal_onnxruntime(func, onnx_op):
    from onnx import helper, numpy_helper

    x = (RNG.normal(size=(3, 50)) * 5).astype(np.float32)
    if onnx_op == "Clip":
        import onnxruntime as ort
        from onnx import TensorProto
        g = helper.make_graph([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 50])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(np.float32(0), "lo"),
                                           numpy_helper.from_array(np.float32(6), "hi")])
        sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
                                    .SerializeToString(), providers=["CPUExecutionProvider"])
    else:
        sess = _onnx(helper.make_node(onnx_op, ["x"], ["y"]), [3, 50])
    layer = Layer("act", "a", "f32", {}, {"func": func})
    np.testing.assert_allclose(act.forward_float(layer, x), sess.run(None, {"x": x})[0], rtol=1e-6, atol=1e-6)


def test_conv1d_and_pool1d_equal_onnxruntime():
    from onnx import helper, numpy_helper

    w = RNG.normal(size=(5, 3, 4)).astype(np.float32)      # (out, k, in)
    b = RNG.normal(size=5).astype(np.float32)
    g = canonicalize("c", (17, 4), [("conv1d", "c", {"w": w, "b": b, "stride": np.array([2]), "pad": np.array([1, 2])}),
                                    ("maxpool1d", "p", {"kernel": np.array([2])})])
    import onnxruntime as ort
    from onnx import TensorProto
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[2], pads=[1, 2]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2], strides=[2])]
    og = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 17])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                           initializer=[numpy_helper.from_array(w.transpose(0, 2, 1).copy(), "w"),
                                        numpy_helper.from_array(b, "b")])
    sess = ort.InferenceSession(helper.make_model(og, opset_imports=[helper.make_opsetid("", 17)])
                                .SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(2, 17, 4)).astype(np.float32)
    expected = sess.run(None, {"x": x.transpose(0, 2, 1).copy()})[0].transpose(0, 2, 1)   # (N, L', C)
    got = reference.run_layers(g, x.reshape(2, -1), lambda k, layer, h: k.forward_float(layer, h))
    np.testing.assert_allclose(got, expected.reshape(2, -1), rtol=1e-5, atol=1e-5)
    assert [layer.kind for layer in g.layers] == ["conv2d", "maxpool2d"]
    assert g.layers[0].attrs["kernel"] == (1, 3) and g.layers[0].attrs["pad"] == (0, 0, 1, 2)


@pytest.mark.parametrize("func", act.FUNCS)
def test_int8_tables_are_within_half_a_step_of_the_function(func):
    in_q = (0.05, 3)
    out_q = act.FIXED_Q.get(func, (6 / 255, -128))
    codes = np.arange(-128, 128)
    real = act.apply(func, in_q[0] * (codes - in_q[1]))
    got = out_q[0] * (act.table(func, in_q, out_q) - out_q[1])
    lo, hi = out_q[0] * (-128 - out_q[1]), out_q[0] * (127 - out_q[1])     # what int8 codes can say
    assert np.all(np.abs(got - np.clip(real, lo, hi)) <= out_q[0] / 2 + 1e-12)
    assert len(np.unique(got)) > 40   # not all saturated: the bound above says something


def test_int8_softmax_keeps_the_arg_max_and_int32():
    layer = softmax.quantize(Layer("softmax", "s", "f32", {}, {}), (0.1, 0), None)[0]
    x = RNG.integers(-128, 128, size=(500, 12))
    y = softmax.forward_i8(layer, x)
    assert np.all(x[np.arange(len(x)), y.astype(np.int64).argmax(axis=1)] == x.max(axis=1))
    e = np.exp(0.1 * (x - x.max(axis=1, keepdims=True)))
    assert np.abs((y.astype(np.int64) + 128) / 256 - e / e.sum(axis=1, keepdims=True)).max() < 2 / 256
    flat = softmax.forward_i8(layer, np.zeros((1, softmax.MAX_LOGITS), np.int64))   # the largest sum int32 holds
    assert flat.min() == flat.max() == -128


def _all_ops_model():
    ops = [("conv1d", "c1", {"w": RNG.normal(size=(6, 3, 4)) / 3, "b": RNG.normal(size=6) * .1, "pad": np.array([1, 1])}),
           ("relu6", "r6", {}),
           ("maxpool1d", "mp", {"kernel": np.array([2])}),
           ("reshape", "rs", {"shape": np.array([5, 2, 6])}),
           ("dwconv2d", "dw", {"w": RNG.normal(size=(6, 3, 2)) / 2, "pad": np.array([1, 1, 0, 1])}),
           ("tanh", "th", {}),
           ("flatten", "f", {}),
           ("dense", "d", {"w": RNG.normal(size=(8, 60)) / 5}),
           ("sigmoid", "sg", {}),
           ("dense", "d2", {"w": RNG.normal(size=(5, 8))}),
           ("device_softmax", "sm", {})]
    g = canonicalize("acts", (20, 4), ops)
    x = RNG.normal(size=(64, 20, 4)) * 2
    return g, quantize_graph(g, x)[0], x.reshape(64, -1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("acts")
    g, q, x = _all_ops_model()
    blob_writer.write(q, d / "q.dxb")
    blob_writer.write(g, d / "f.dxb")
    xi = reference.prepare_input(blob_reader.read(d / "q.dxb").graph, x)
    xi = np.vstack([xi, np.full((1, xi.shape[1]), -128), np.full((1, xi.shape[1]), 127)]).astype(np.int8)
    return d, g, q, x, xi


def test_every_new_kind_is_bit_exact_on_every_device(model):
    d, g, q, x, xi = model
    assert [layer.kind for layer in q.layers].count("act") == 3 and q.layers[-1].kind == "softmax"
    expected = reference.run(q, xi)
    for backend in ("viper", "python"):
        run = emulator.run(d / "q.dxb", xi, backend=backend)
        np.testing.assert_array_equal(run.outputs, expected, err_msg=backend)
    for target in ("qemu-m3", "qemu-m0"):
        if qemu.available(target):
            for backend in ("asm", "viper"):
                r = qemu.run(d / "q.dxb", xi[:6], target, backend=backend)
                np.testing.assert_array_equal(r["outputs"], expected[:6], err_msg=f"{target} {backend}")
    if CIRCUITPYTHON.is_file():
        run = emulator.run(d / "q.dxb", xi[:6], firmware=CIRCUITPYTHON, source=True)
        np.testing.assert_array_equal(run.outputs, expected[:6])
    probs = (expected[:-2].astype(np.float64) + 128) / 256          # int8 softmax codes -> probabilities
    fl = reference.run_layers(g, x, lambda k, layer, h: k.forward_float(layer, h))
    assert (probs.argmax(1) == fl.argmax(1)).mean() > 0.9 and np.abs(probs - fl).max() < 0.05


def test_float_blob_with_the_new_kinds_runs_on_the_device(model):
    d, g, q, x, xi = model
    back = blob_reader.read(d / "f.dxb").graph
    xf = reference.prepare_input(back, x.astype(np.float32))
    run = emulator.run(d / "f.dxb", xf[:8])
    np.testing.assert_allclose(run.outputs, reference.run(back, xf[:8]), rtol=1e-5, atol=1e-6)


def test_bad_activation_headers_and_graphs_are_refused(model, tmp_path):
    d, g, q, x, xi = model
    layers = [lay for lay in q.layers]
    i = next(k for k, lay in enumerate(layers) if lay.kind == "act")
    bad = q.copy(layers=layers[:i] + [Layer("act", "gelu", "i8", layers[i].tensors, {**layers[i].attrs,
                                                                                    "func": "gelu"})] + layers[i + 1:])
    blob_writer.write(bad, tmp_path / "bad.dxb")
    with pytest.raises(FormatError, match="unknown activation function 'gelu'"):
        blob_reader.read(tmp_path / "bad.dxb")
    with pytest.raises(emulator.DeviceError, match="unknown activation function 'gelu'"):
        emulator.run(tmp_path / "bad.dxb", xi[:1])
    with pytest.raises(UnsupportedOpError, match=r"node 'r' \(reshape\): \[20, 4\] cannot become \[3, 3\]"):
        canonicalize("r", (20, 4), [("reshape", "r", {"shape": np.array([3, 3])}), ("dense", "d", {"w": np.ones((2, 9))})])
    with pytest.raises(UnsupportedOpError, match=r"node 'c' \(conv1d\) needs an \(L, C\) input"):
        canonicalize("c", (4, 5, 3), [("conv1d", "c", {"w": np.ones((2, 3, 3))})])
    with pytest.raises(UnsupportedOpError, match=r"node 'r' \(relu\) must directly follow"):
        canonicalize("c", (8,), [("dense", "d", {"w": np.ones((2, 8))}), ("tanh", "t", {}), ("relu", "r", {})])
