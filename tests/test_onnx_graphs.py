"""ONNX importer on hand-built graphs: it follows the declared output, folds constants and affines exactly,
reads Gemm in full, and lists every node it cannot convert. Each graph is checked against onnx's reference."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from microdx import importers, reference
from microdx.errors import ModelFileError, UnsupportedOpError
from microdx.optimizers import get
from microdx.optimizers.clean import clean

RNG = np.random.default_rng(5)


def _init(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def save(path, nodes, inits, outputs, n_in=6, opset=17):
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", "F"]) for o in outputs]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return model


def ref(model, x, output):
    return ReferenceEvaluator(model).run([output], {"x": x.astype(np.float32)})[0]


def chain(tmp_path, outputs):
    """Gemm -> Relu (declared 'hidden') -> Gemm -> Softmax (declared 'probs')."""
    w1, b1, w2 = RNG.normal(size=(8, 6)), RNG.normal(size=8), RNG.normal(size=(3, 8))
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["hidden"], name="relu1"),
             helper.make_node("Gemm", ["hidden", "w2"], ["logits"], name="fc2", transB=1),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1)]
    return save(tmp_path / "m.onnx", nodes, [_init("w1", w1), _init("b1", b1), _init("w2", w2)], outputs)


def test_hidden_output_converts_to_exactly_that_output(tmp_path):
    model = chain(tmp_path, ["hidden"])
    g = importers.load(tmp_path / "m.onnx")
    assert len(g.layers) == 1 and g.layers[0].attrs["act"] == "relu" and g.post is None
    x = RNG.normal(size=(10, 6))
    np.testing.assert_allclose(reference.run_float(g, x), ref(model, x, "hidden"), rtol=1e-5, atol=1e-5)


def test_two_outputs_are_refused_by_name(tmp_path):
    chain(tmp_path, ["hidden", "probs"])
    with pytest.raises(UnsupportedOpError, match=r"declares 2 outputs \('hidden', 'probs'\).*one output"):
        importers.load(tmp_path / "m.onnx")


def test_gemm_in_full_and_bias_shapes(tmp_path):
    """transB=0, alpha, beta, and biases of shape (m,), (1, m) and scalar all give onnx's numbers."""
    x = RNG.normal(size=(7, 6))
    for i, bias in enumerate([RNG.normal(size=4), RNG.normal(size=(1, 4)), np.array(0.7)]):
        nodes = [helper.make_node("Gemm", ["x", "b", "c"], ["y"], name="fc", alpha=0.5, beta=2.0)]
        model = save(tmp_path / f"g{i}.onnx", nodes, [_init("b", RNG.normal(size=(6, 4))), _init("c", bias)], ["y"])
        g = importers.load(tmp_path / f"g{i}.onnx")
        np.testing.assert_allclose(reference.run_float(g, x), ref(model, x, "y"), rtol=1e-5, atol=1e-5)


def test_gemm_with_the_constant_first_is_refused(tmp_path):
    nodes = [helper.make_node("Gemm", ["w", "x"], ["y"], name="backwards", transB=1)]
    save(tmp_path / "m.onnx", nodes, [_init("w", RNG.normal(size=(5, 6)))], ["y"])
    with pytest.raises(UnsupportedOpError, match="node 'backwards' \\(Gemm\\): the constant is the first operand"):
        importers.load(tmp_path / "m.onnx")


def test_normalisation_constants_and_batchnorm_fold_exactly(tmp_path):
    """Sub/Div input normalisation, a weight behind Constant -> Reshape -> Identity -> Cast, a BatchNormalization
    after a Gemm, Dropout, a Mul by a scalar: all folded into two dense layers with onnx's outputs."""
    w1 = RNG.normal(size=(6, 8))
    mean, std = RNG.normal(size=6), RNG.uniform(0.5, 2, size=6)
    gamma, beta, mu, var = RNG.normal(size=8), RNG.normal(size=8), RNG.normal(size=8), RNG.uniform(0.2, 3, size=8)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["xc"], name="center"),
        helper.make_node("Div", ["xc", "std"], ["xn"], name="scale"),
        helper.make_node("Constant", [], ["shape"], name="shape_const",
                         value=numpy_helper.from_array(np.array([6, 8], np.int64))),
        helper.make_node("Reshape", ["w1flat", "shape"], ["w1r"], name="reshape_w"),
        helper.make_node("Identity", ["w1r"], ["w1i"], name="id_w"),
        helper.make_node("Cast", ["w1i"], ["w1c"], name="cast_w", to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["xn", "w1c"], ["h"], name="fc1"),
        helper.make_node("BatchNormalization", ["h", "gamma", "beta", "mu", "var"], ["hb"], name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["hb"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["d"], name="drop"),
        helper.make_node("Mul", ["d", "two"], ["m"], name="times2"),
        helper.make_node("Gemm", ["m", "w2"], ["y"], name="fc2", transB=1),
    ]
    inits = [_init("mean", mean), _init("std", std), _init("w1flat", w1.reshape(-1)), _init("gamma", gamma),
             _init("beta", beta), _init("mu", mu), _init("var", var), _init("two", 2.0), _init("w2", RNG.normal(size=(3, 8)))]
    model = save(tmp_path / "m.onnx", nodes, inits, ["y"])
    raw = importers.load(tmp_path / "m.onnx")
    assert [layer.kind for layer in raw.layers] == ["affine", "affine", "dense", "affine", "affine", "dense"]
    result = get("clean").apply(raw)
    g = result.graph
    assert [(layer.kind, layer.attrs["act"]) for layer in g.layers] == [("dense", "relu"), ("dense", None)]
    assert result.report["bytes_after"] < result.report["bytes_before"] and len(result.report["layers"]) == 4
    x = RNG.normal(size=(50, 6))
    expected = ref(model, x, "y")
    for graph in (raw, g):
        np.testing.assert_allclose(reference.run_float(graph, x), expected, rtol=1e-4, atol=1e-4)


def test_scale_after_relu_at_the_end_cannot_fold(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "k"], ["y"], name="rescale")]
    save(tmp_path / "m.onnx", nodes, [_init("w", RNG.normal(size=(3, 6))), _init("k", [1.0, 2.0, 3.0])], ["y"])
    with pytest.raises(UnsupportedOpError, match="node 'rescale': an elementwise scale/shift after a ReLU"):
        clean(importers.load(tmp_path / "m.onnx"))


def test_every_unsupported_node_is_listed_with_an_alternative(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Tanh", ["h"], ["t"], name="squash"),
             helper.make_node("Gemm", ["t", "w2"], ["h2"], name="fc2", transB=1),
             helper.make_node("LeakyRelu", ["h2"], ["y"], name="leaky")]
    save(tmp_path / "m.onnx", nodes, [_init("w", RNG.normal(size=(4, 6))), _init("w2", RNG.normal(size=(3, 4)))], ["y"])
    with pytest.raises(UnsupportedOpError) as e:
        importers.load(tmp_path / "m.onnx")
    msg = str(e.value)
    assert "2 node(s)" in msg and "node 'squash' uses op 'Tanh' (instead: ReLU" in msg
    assert "node 'leaky' uses op 'LeakyRelu' (instead: ReLU)" in msg


def test_a_residual_add_imports_and_parallel_branches_are_named(tmp_path):
    w = RNG.normal(size=(6, 6))
    nodes = [helper.make_node("Gemm", ["x", "w"], ["h"], name="fc", transB=1),
             helper.make_node("Add", ["h", "x"], ["y"], name="skip")]        # y = W x + x: the input is the skip
    save(tmp_path / "m.onnx", nodes, [_init("w", w)], ["y"])
    g = importers.load(tmp_path / "m.onnx")
    assert [layer.kind for layer in g.layers] == ["dense", "add"] and g.layers[1].attrs["skip"] is None
    x = RNG.normal(size=(5, 6))
    np.testing.assert_allclose(reference.run_float(g, x), x @ w.T + x, rtol=1e-5)
    nodes = [helper.make_node("Gemm", ["x", "w"], ["a"], name="fc1", transB=1),
             helper.make_node("Gemm", ["x", "w"], ["b"], name="fc2", transB=1),   # a second branch from x
             helper.make_node("Add", ["a", "b"], ["y"], name="join")]
    save(tmp_path / "b.onnx", nodes, [_init("w", w)], ["y"])
    with pytest.raises(UnsupportedOpError, match="node 'fc2' \\(Gemm\\) takes x.*branches"):
        importers.load(tmp_path / "b.onnx")


@pytest.mark.parametrize("content", [b"this is not a model\n", b""])
def test_a_file_that_is_not_onnx(tmp_path, content):
    (tmp_path / "m.onnx").write_bytes(content)
    with pytest.raises(ModelFileError, match="m.onnx is not a readable ONNX model"):
        importers.load(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match="is a directory"):
        importers.load(tmp_path)


def test_nan_weight_is_named(tmp_path):
    w = RNG.normal(size=(3, 6))
    w[1, 2] = np.nan
    save(tmp_path / "m.onnx", [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)], [_init("w", w)], ["y"])
    with pytest.raises(UnsupportedOpError, match=r"node 'fc': tensor 'w' holds nan at index \[1, 2\]"):
        importers.load(tmp_path / "m.onnx")
