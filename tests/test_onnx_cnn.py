"""PyTorch CNNs exported to ONNX with both exporters (tools/make_cnn_onnx_fixtures.py, trained on scikit-learn's 8x8
digits): Conv (group 1 and depthwise), BatchNormalization folded into the conv, ReLU and ReLU6 (Clip), MaxPool,
AveragePool without padded cells, global average pooling (GlobalAveragePool or the dynamo exporter's ReduceMean),
Flatten in CHW order, residual Adds (the second block adding the first block's output; the device keeps a skip
buffer). The float graph equals onnxruntime to float tolerance on the held-out digits (fed HWC to microdx, NCHW to
onnxruntime), and so does the float blob on the emulated RP2040; the int8 blob stays within a point of float
accuracy and runs bit-exact on it."""
from pathlib import Path

import numpy as np
import pytest

from microdx import blob_writer, emulator, reference
from microdx.errors import UnsupportedOpError
from microdx.importers import load, onnx_cnn
from microdx.quantize import quantize_graph

FIXTURES = Path(__file__).parent / "fixtures" / "onnx_cnn"


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)


def _hwc(x):
    return x.transpose(0, 2, 3, 1).reshape(len(x), -1).astype(np.float64)


@pytest.mark.parametrize("name, kinds", [
    ("dw_classic", ["conv2d", "dwconv2d", "act", "conv2d", "maxpool2d", "dense"]),
    ("dw_dynamo", ["conv2d", "dwconv2d", "act", "conv2d", "maxpool2d", "dense"]),
    ("gap_classic", ["conv2d", "avgpool2d", "conv2d", "gap", "dense"]),
    ("gap_dynamo", ["conv2d", "avgpool2d", "conv2d", "gap", "dense"]),
    ("res_classic", ["conv2d", "conv2d", "add", "conv2d", "add", "maxpool2d", "dense"]),   # two residual blocks
    ("res_dynamo", ["conv2d", "conv2d", "add", "conv2d", "add", "maxpool2d", "dense"]),
])
def test_pytorch_cnn_imports_exactly_and_runs_on_the_rp2040(digits, tmp_path, name, kinds):
    import onnxruntime as ort

    x_tr, x_te, y_tr, y_te = digits
    g = load(FIXTURES / f"{name}.onnx")
    assert [layer.kind for layer in g.layers] == kinds and g.input_shape == (8, 8, 1)
    sess = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"))
    expected = np.concatenate([sess.run(None, {"x": x_te[i:i + 1]})[0] for i in range(len(x_te))])
    fl = reference.run_layers(g, _hwc(x_te), lambda k, layer, h: k.forward_float(layer, h))
    np.testing.assert_allclose(fl, expected, rtol=1e-4, atol=1e-4)
    float_acc = (fl.argmax(1) == y_te).mean()
    q = quantize_graph(g, _hwc(x_tr))[0]
    blob_writer.write(q, tmp_path / "m.dxb")
    xq = reference.prepare_input(q, _hwc(x_te))
    host = reference.run(q, xq)
    assert float_acc > 0.95 and (host.argmax(1) == y_te).mean() >= float_acc - 0.01
    run = emulator.run(tmp_path / "m.dxb", xq[:60], board="rp2040")
    np.testing.assert_array_equal(run.outputs, host[:60])
    if "add" in kinds:   # the add layers fused the ReLU after them and name the layers they add
        adds = [layer for layer in g.layers if layer.kind == "add"]
        assert all(a.attrs["act"] == "relu" for a in adds) and adds[1].attrs["skip"] == adds[0].name
    blob_writer.write(g, tmp_path / "f.dxb")   # the float blob: onnxruntime's outputs within float tolerance
    dev = emulator.run(tmp_path / "f.dxb", _hwc(x_te[:30]).astype(np.float32), board="rp2040").outputs
    np.testing.assert_allclose(dev, expected[:30], rtol=1e-4, atol=1e-4)


def test_an_add_of_a_tensor_that_a_fused_relu_changed_is_refused(tmp_path):
    """h = Conv(x); y = Relu(h) + h: the pre-ReLU h is not a layer's output once the ReLU is fused: named, refused."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], name="conv"), helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "h"], ["y"], name="res")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(UnsupportedOpError, match=r"node 'res' \(Add\) adds 'h', which microdx does not keep"):
        load(onnx_path)


def test_chw_flatten_is_reordered_for_hwc():
    w = np.arange(2 * 3 * 2 * 2).reshape(2, 12).astype(float)     # (out, C*H*W) with C=3, H=W=2
    x_chw = np.arange(12.0)
    x_hwc = x_chw.reshape(3, 2, 2).transpose(1, 2, 0).reshape(-1)
    np.testing.assert_allclose(onnx_cnn.hwc_columns(w, (2, 2, 3)) @ x_hwc, w @ x_chw)


def test_unsupported_cnn_attributes_are_named():
    with pytest.raises(UnsupportedOpError, match=r"node 'c' \(Conv\): dilations"):
        onnx_cnn.op_Conv("c", [None, np.ones((4, 2, 3, 3))], {"dilations": [2, 2]}, (8, 8, 2))
    with pytest.raises(UnsupportedOpError, match="group 2"):
        onnx_cnn.op_Conv("c", [None, np.ones((4, 1, 3, 3))], {"group": 2}, (8, 8, 2))
    with pytest.raises(UnsupportedOpError, match="count_include_pad=1"):
        onnx_cnn.op_AveragePool("p", [None], {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1],
                                             "count_include_pad": 1}, (8, 8, 2))
    with pytest.raises(UnsupportedOpError, match=r"Clip\): \[0.0, 3.0\]"):
        onnx_cnn.op_Clip("k", [None, np.float32(0), np.float32(3)], {}, (8, 8, 2))
    with pytest.raises(UnsupportedOpError, match="only right after a Conv"):
        onnx_cnn.fold_bn([("relu", "r", {})], "bn", np.ones(2), np.zeros(2))
