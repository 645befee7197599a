"""Reading int8 .tflite files and TFLite's integer arithmetic (the first stage of the TFLite importer): on the
committed fixtures (tools/make_tflite_fixtures.py: built by TensorFlow's converter, outputs from TFLite's reference
kernels), microdx's reading of every op and its exact integer arithmetic give identical int8 outputs on every
input: the MLP (per-channel FULLY_CONNECTED, fused RELU and RELU6), the CNN (SAME and VALID padding, strides,
MAX_POOL_2D, RESHAPE), the DS-CNN keyword network over 49x10 (DEPTHWISE_CONV_2D, AVERAGE_POOL_2D; its logits
and after the SOFTMAX), the residual block (ADD), the global average pool (MEAN, float32 in TFLite) and a SOFTMAX and
a MEAN alone on 304 inputs each. microdx's own integer softmax (kind softmax, for graphs microdx quantizes) keeps
TFLite's arg-max. Bad files are refused with the file named."""
from pathlib import Path

import numpy as np
import pytest

from microdx.errors import ModelFileError, UnsupportedOpError
from microdx.importers import tflite_read
from microdx.ir import Layer
from microdx.ops import conv2d, softmax

FIXTURES = Path(__file__).parent / "fixtures" / "tflite"


def _load(name):
    return tflite_read.read(FIXTURES / f"{name}.tflite"), np.load(FIXTURES / f"{name}.npz")


@pytest.mark.parametrize("name, ops", [
    ("mlp", ["FULLY_CONNECTED"] * 3),
    ("cnn", ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]),
    ("residual", ["CONV_2D", "CONV_2D", "ADD", "AVERAGE_POOL_2D", "FULLY_CONNECTED"]),   # FC reads the 1x1 map
    ("gap_mean", ["CONV_2D", "MEAN", "FULLY_CONNECTED"]),
    ("kws_dscnn", ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "AVERAGE_POOL_2D",
                   "FULLY_CONNECTED", "SOFTMAX"]),
    ("softmax", ["SOFTMAX"]),
    ("mean", ["MEAN"]),
])
def test_int8_outputs_equal_tflite_reference_kernels(name, ops):
    model, z = _load(name)
    assert [op.op for op in model.ops] == ops
    got = tflite_read.run_int8(model, z["x"])[model.outputs[0]].reshape(z["y"].shape)
    np.testing.assert_array_equal(got, z["y"])
    assert len(np.unique(z["y"])) > 20 or name == "gap_mean"   # outputs that vary: the comparison says something


def test_kws_dscnn_logits_equal_tflite_and_the_softmax_keeps_the_arg_max():
    model, z = _load("kws_dscnn")
    assert [op.op for op in model.ops][:6] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D",
                                              "CONV_2D", "AVERAGE_POOL_2D"] and model.ops[-1].op == "SOFTMAX"
    sm = model.ops[-1]
    model.ops, model.outputs = model.ops[:-1], [sm.inputs[0]]
    logits = tflite_read.run_int8(model, z["x"])[sm.inputs[0]].reshape(z["logits"].shape)
    np.testing.assert_array_equal(logits, z["logits"])
    t = model.tensors[sm.inputs[0]]
    ours = softmax.forward_i8(softmax.quantize(Layer("softmax", "s", "f32", {}, {}), (float(t.scale[0]),
                                                                                    int(t.zero[0])), None)[0], logits)
    theirs = z["y"].astype(np.int64)
    rows = np.arange(len(logits))
    assert np.all(theirs[rows, ours.argmax(axis=1)] == theirs.max(axis=1))     # the same most probable class
    assert np.abs(ours.astype(np.int64) - theirs).max() <= 2                   # probabilities within 2/256


def test_fixture_padding_is_uneven_and_strided_where_tflite_makes_it_so():
    model, _ = _load("cnn")
    conv = model.ops[0]
    assert conv.options["same"] and conv.options["stride"] == (2, 2)
    assert conv2d.same_padding(12, 3, 2) == (0, 1) and conv2d.same_padding(10, 3, 2) == (0, 1)
    assert not model.ops[1].options["same"] and model.ops[1].options["act"] == "relu6"


def test_quantize_multiplier_matches_tflite_conventions():
    m, s = tflite_read.quantize_multiplier([0.5, 0.75, 1.0, 2**-40, 0.0, 0.9999999999])
    assert m.tolist()[:3] == [2**30, 3 * 2**29, 2**30] and s.tolist()[:3] == [0, 0, 1]
    assert (m[3], s[3]) == (0, 0) and (m[4], s[4]) == (0, 0)      # flushed to zero, as TFLite does
    assert (m[5], s[5]) == (2**30, 1)                              # rounds up to the next power of two


def test_bad_files_are_refused_with_the_file_named(tmp_path):
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="junk.tflite: not a .tflite file"):
        tflite_read.read(tmp_path / "junk.tflite")
    flat = (FIXTURES / "mlp.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(flat[:200])
    with pytest.raises(ModelFileError, match="cut.tflite: cannot read the .tflite flatbuffer"):
        tflite_read.read(tmp_path / "cut.tflite")
