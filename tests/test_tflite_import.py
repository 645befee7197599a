"""Float .tflite models (tools/make_tflite_fixtures.py: Keras models through TensorFlow's converter, outputs from
TFLite's reference kernels): imported as float Graphs whose forward equals TFLite's to float rounding, then
quantized by microdx like an ONNX model and run on the emulated RP2040, bit-exact with the host reference; conv
models take calibration and input data of shape (N, H, W, C). Refusals (a float blob of an int8 file, a
non-.tflite) are in tests/test_cli_errors.py; int8 files in tests/test_tflite_int8.py."""
from pathlib import Path

import numpy as np
import pytest

from microdx import blob_reader, cli, emulator, reference
from microdx.importers import load

FIXTURES = Path(__file__).parent / "fixtures" / "tflite"


@pytest.mark.parametrize("name, kinds", [
    ("mlp_f32", ["dense", "dense", "act", "dense"]),                         # RELU fused, RELU6 a table layer
    ("cnn_f32", ["conv2d", "conv2d", "act", "maxpool2d", "dense"]),          # SAME (uneven) and VALID, strides
    ("kws_dscnn_f32", ["conv2d", "dwconv2d", "conv2d", "dwconv2d", "conv2d", "avgpool2d", "dense"]),
    ("gap_mean_f32", ["conv2d", "gap", "dense"]),                            # GlobalAveragePooling2D: MEAN
    ("residual_f32", ["conv2d", "conv2d", "add", "avgpool2d", "dense"]),      # residual ADD, its RELU fused
])
def test_float_forward_equals_tflite(name, kinds):
    g = load(FIXTURES / f"{name}.tflite")
    z = np.load(FIXTURES / f"{name}.npz")
    assert [layer.kind for layer in g.layers] == kinds
    y = reference.run_layers(g, z["x"].reshape(len(z["x"]), -1).astype(np.float64),
                             lambda k, layer, h: k.forward_float(layer, h))
    if g.post == "softmax":
        e = np.exp(y - y.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, z["y"], rtol=1e-5, atol=1e-5)


def test_kws_tflite_converts_and_runs_on_the_rp2040_bit_exact(tmp_path, capsys):
    z = np.load(FIXTURES / "kws_dscnn_f32.npz")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).normal(size=(64, 49, 10, 1)))   # (N, H, W, C)
    np.savez(tmp_path / "x.npz", x=z["x"])
    assert cli.main(["convert", str(FIXTURES / "kws_dscnn_f32.tflite"), "-o", str(tmp_path / "k.dxb"),
                     "--calib", str(tmp_path / "calib.npz")]) == 0
    q = blob_reader.read(tmp_path / "k.dxb").graph
    assert q.input_shape == (49, 10, 1) and q.post == "softmax"
    x = reference.prepare_input(q, z["x"].reshape(len(z["x"]), -1))
    run = emulator.run(tmp_path / "k.dxb", x, board="rp2040")
    np.testing.assert_array_equal(run.outputs, reference.run(q, x))
    s, zero = q.output_q
    g = load(FIXTURES / "kws_dscnn_f32.tflite")
    fl = reference.run_layers(g, z["x"].reshape(len(z["x"]), -1), lambda k, layer, h: k.forward_float(layer, h))
    assert ((s * (run.outputs.astype(float) - zero)).argmax(axis=1) == fl.argmax(axis=1)).mean() >= 0.9
    capsys.readouterr()
    assert cli.main(["inspect", str(tmp_path / "k.dxb"), "--board", "rp2040"]) == 0
    text = capsys.readouterr().out
    assert "dwconv2d" in text and "avgpool2d" in text and "heap   fits" in text
