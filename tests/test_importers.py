"""Importers: .npz schema and ONNX (checked against onnx's own reference evaluator)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from microdx import importers, reference
from microdx.errors import MicrodxError, UnsupportedOpError
from microdx.importers import npz
from microdx.optimizers.clean import clean

RNG = np.random.default_rng(0)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def onnx_mlp(path, nodes, inits, n_in=6, n_out=3):
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, ["N", n_out])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return model


def test_onnx_gemm_matmul_add_relu_softmax_flatten(tmp_path):
    w1, b1 = RNG.normal(size=(8, 6)), RNG.normal(size=8)       # Gemm transB=1: weight is (out, in)
    w2, b2 = RNG.normal(size=(8, 5)), RNG.normal(size=5)       # MatMul: weight is (in, out)
    w3 = RNG.normal(size=(3, 5))                               # Gemm transB=0: B is (in, out) = w3.T
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w1", "b1"], ["h1"], name="fc1", transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["m2", "b2"], ["h2"], name="fc2_bias"),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("Gemm", ["r2", "w3t"], ["h3"], name="fc3"),
             helper.make_node("Softmax", ["h3"], ["y"], name="prob", axis=-1)]
    model = onnx_mlp(tmp_path / "m.onnx", nodes, [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2),
                                                 _init("w3t", w3.T)])
    raw = importers.load(tmp_path / "m.onnx")
    assert [layer.kind for layer in raw.layers] == ["dense", "dense", "affine", "dense"]   # Add is a bias to fold
    g = clean(raw)
    assert [layer.attrs["act"] for layer in g.layers] == ["relu", "relu", None] and g.post == "softmax"
    x = RNG.normal(size=(20, 6)).astype(np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    for graph in (raw, g):
        logits = reference.run_float(graph, x)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
def test_onnx_unsupported_op_names_node_and_op(tmp_path, op):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node(op, ["h"], ["y"], name="squash")]
    onnx_mlp(tmp_path / "m.onnx", nodes, [_init("w", RNG.normal(size=(3, 6)))])
    with pytest.raises(UnsupportedOpError, match=f"node 'squash' uses op '{op}'"):
        importers.load(tmp_path / "m.onnx")


def test_onnx_relu_without_dense_is_refused(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Gemm", ["r", "w"], ["y"], name="fc", transB=1)]
    onnx_mlp(tmp_path / "m.onnx", nodes, [_init("w", RNG.normal(size=(3, 6)))])
    with pytest.raises(UnsupportedOpError, match="first_relu"):
        importers.load(tmp_path / "m.onnx")


def test_npz_round_trip_and_schema(tmp_path):
    ops = [("dense", {"w": RNG.normal(size=(4, 3)), "b": RNG.normal(size=4)}), ("relu", {}),
           ("dense", {"w": RNG.normal(size=(2, 4))}), ("softmax", {})]
    npz.save(tmp_path / "m.npz", ops, labels=["a", "b"], name="tiny")
    g = importers.load(tmp_path / "m.npz")
    assert (g.name, g.labels, g.input_shape, g.post) == ("tiny", ["a", "b"], (3,), "softmax")
    x = RNG.normal(size=(5, 3))
    h = np.maximum(x @ ops[0][1]["w"].T + ops[0][1]["b"], 0) @ ops[2][1]["w"].T
    np.testing.assert_allclose(reference.run_float(g, x), h, rtol=1e-5)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "bad.npz", kinds=np.array(["dense", "gelu"]), **{"0.w": np.ones((2, 2))})
    with pytest.raises(UnsupportedOpError, match="op 'gelu'"):
        importers.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "nokinds.npz", w=np.ones(2))
    with pytest.raises(UnsupportedOpError, match="no 'kinds'"):
        importers.load(tmp_path / "nokinds.npz")
    with pytest.raises(MicrodxError, match=".npz, .onnx and .tflite"):
        importers.load(tmp_path / "model.h5")


@pytest.mark.parametrize("arrays, message", [
    ({"kinds": np.array(["dense"]), "0.w": np.array([[1, "a"]], dtype=object)}, "array '0.w' cannot be read"),
    ({"kinds": np.array(["dense"]), "0.w": np.array([["a", "b"]])}, "array '0.w' has dtype <U1; weights must be numbers"),
    ({"kinds": np.array([1, 2])}, "'kinds' must be a 1-D string array"),
    ({"kinds": np.array(["dense"]), "0.w": np.array([[1.0, np.inf]])}, r"tensor 'w' holds inf at index \[0, 1\]"),
    ({"kinds": np.array(["dense"]), "0.w": np.array([[1e39, 0.0]])}, "beyond float32"),
    ({"kinds": np.array(["affine", "dense"]), "1.w": np.ones((2, 3))}, r"tensor\(s\) scale, shift missing"),
])
def test_npz_model_bad_arrays_are_named(tmp_path, arrays, message):
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(MicrodxError, match=message):
        importers.load(tmp_path / "m.npz")


def test_npz_that_is_not_an_npz(tmp_path):
    (tmp_path / "m.npz").write_text("just text\n")
    with pytest.raises(MicrodxError, match="m.npz is not a readable .npz file"):
        importers.load(tmp_path / "m.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(MicrodxError, match="single .npy array"):
        importers.load(tmp_path / "single.npz")


def test_sklearn_binary_classifier_is_refused_and_regressor_has_no_softmax():
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    x = RNG.normal(size=(40, 3))
    import warnings
    warnings.simplefilter("ignore")
    binary = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5).fit(x, x[:, 0] > 0)
    with pytest.raises(UnsupportedOpError, match="binary classifier"):
        npz.from_sklearn_mlp(binary)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5).fit(x, x[:, 0])
    assert [k for k, _ in npz.from_sklearn_mlp(reg)] == ["dense", "relu", "dense"]
