"""Depthwise convolution and global average pooling, and the DS-CNN keyword-spotting shape they make (conv ->
4 x (depthwise 3x3 + pointwise 1x1) -> global average pool -> dense over a 49x10 MFCC input): the float ops against
onnxruntime, the int8 rounding of the pool, the whole model bit-exact on the emulated RP2040 (unix port, its heap)
and on the Cortex-M0/M3 targets, bad headers refused on both sides. Weights are random: this is about arithmetic,
memory and speed, not accuracy (the trained keyword models arrive with their own issue)."""
import numpy as np
import pytest

from helpers import open_each, rewrite_header
from microdx import blob_reader, blob_writer, emulator, errors, qemu, ram, reference
from microdx.ir import Layer, canonicalize, layer_shapes
from microdx.ops import dwconv2d, gap
from microdx.quantize import quantize_graph

RNG = np.random.default_rng(91)


def ds_cnn(ch=64, blocks=4, classes=12, seed=0):
    """The DS-CNN shape of Hello Edge (Zhang et al. 2017) over 49 frames x 10 MFCC: conv 10x4 stride 2, then blocks
    of depthwise 3x3 + pointwise 1x1 with ReLU, global average pool, dense."""
    rng = np.random.default_rng(seed)
    ops = [("conv2d", "conv0", {"w": rng.normal(size=(ch, 10, 4, 1)) / 6, "b": rng.normal(size=ch) * 0.1,
                                "stride": np.array([2, 2]), "pad": np.array([4, 5, 1, 1])}), ("relu", "r0", {})]
    for i in range(blocks):
        ops += [("dwconv2d", f"dw{i}", {"w": rng.normal(size=(ch, 3, 3)) / 3, "b": rng.normal(size=ch) * 0.1,
                                        "pad": np.array([1, 1, 1, 1])}), ("relu", f"dr{i}", {}),
                ("conv2d", f"pw{i}", {"w": rng.normal(size=(ch, 1, 1, ch)) / 8, "b": rng.normal(size=ch) * 0.1}),
                ("relu", f"pr{i}", {})]
    ops += [("gap", "gap", {}), ("dense", "fc", {"w": rng.normal(size=(classes, ch)) / 8, "b": np.zeros(classes)})]
    return canonicalize("ds_cnn", (49, 10, 1), ops)


@pytest.mark.parametrize("kernel, stride, pad", [((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 5), (2, 1), (0, 2, 1, 3))])
def test_depthwise_forward_equals_onnxruntime(kernel, stride, pad):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c = 5
    w = RNG.normal(size=(c, *kernel)).astype(np.float32)
    b = RNG.normal(size=c).astype(np.float32)
    layer = canonicalize("d", (10, 9, c), [("dwconv2d", "d", {"w": w, "b": b, "stride": np.array(stride),
                                                            "pad": np.array(pad)})]).layers[0]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=c, strides=list(stride),
                            pads=[pad[0], pad[2], pad[1], pad[3]])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, c, 10, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w[:, None], "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.normal(size=(3, 10, 9, c)).astype(np.float32)
    expected = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})[0].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(dwconv2d.forward_float(layer, x), expected, rtol=1e-5, atol=1e-5)


def test_global_average_pool_rounds_half_away_from_zero():
    layer = Layer("gap", "g", "i8", {}, {"in_shape": (2, 3, 4)})
    x = RNG.integers(-128, 128, size=(500, 2, 3, 4))
    x[0] = [[[3, -3, 0, 1]] * 3, [[0, 0, 0, 0]] * 3]          # sums 9, -9 over 6 cells: 1.5 -> 2, -1.5 -> -2
    got = gap.forward_i8(layer, x)
    exact = x.sum(axis=(1, 2)) / 6
    expected = np.sign(exact) * np.floor(np.abs(exact) + 0.5)
    np.testing.assert_array_equal(got, expected)
    assert list(got[0][:2]) == [2, -2]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    g = ds_cnn()
    x = RNG.normal(size=(32, 49, 10, 1))
    q, _ = quantize_graph(g, x)
    path = tmp_path_factory.mktemp("ds") / "ds_cnn.dxb"
    blob_writer.write(q, path)
    return path, q, x


def test_ds_cnn_shape_and_plan(model):
    path, q, _ = model
    assert [layer.kind for layer in q.layers] == ["conv2d"] + ["dwconv2d", "conv2d"] * 4 + ["gap", "dense"]
    assert layer_shapes(q)[0][1] == (25, 5, 64) and layer_shapes(q)[-2][1] == (64,)
    assert path.stat().st_size < 32 * 1024                     # 28 KB of int8 weights and tables
    assert ram.plan(q)["activation_bytes"] == 2 * (2 * 25 * 5 * 64 + 12)


def test_ds_cnn_runs_bit_exact_on_the_rp2040_profile(model):
    path, q, x = model
    xin = np.vstack([reference.prepare_input(q, x[:4]), np.full((1, 490), -128, np.int8),
                     np.full((1, 490), 127, np.int8)])
    for backend in ("viper", "python"):
        run = emulator.run(path, xin, board="rp2040", backend=backend)
        np.testing.assert_array_equal(run.outputs, reference.run(q, xin), err_msg=backend)
    assert run.stats["heap_bytes"] == 192 * 1024 and run.stats["peak_heap_bytes"] < 80 * 1024, run.stats


@pytest.mark.parametrize("target", ["qemu-m0", "qemu-m3"])
def test_ds_cnn_bit_exact_on_cortex_m(model, target):
    if not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    path, q, x = model
    xin = reference.prepare_input(q, x[:1])
    r = qemu.run(path, xin, target)
    np.testing.assert_array_equal(r["outputs"], reference.run(q, xin))
    assert r["backend"] == "asm"          # what udx picks on an Arm build
    print(f"{target} DS-CNN 49x10: {r['instructions_per_inference']:,} instructions per inference "
          f"({r['instructions_per_mac']} per MAC)")


def _entry(h, kind):
    return next(e for e in h["layers"] if e["kind"] == kind)


@pytest.mark.parametrize("name, mutate, fragment", [
    ("dwconv channels change", lambda h: _entry(h, "dwconv2d").update(out=[25, 5, 32]), "layer 1"),
    ("gap out not its channels", lambda h: _entry(h, "gap").update(out=[63]), "gap maps (H, W, C) to (C,)"),
])
def test_bad_headers_are_refused_by_host_and_device(model, tmp_path, name, mutate, fragment):
    path, _, _ = model
    data = rewrite_header(path.read_bytes(), mutate)
    with pytest.raises(errors.FormatError):
        blob_reader.parse(data)
    bad = tmp_path / "bad.dxb"
    bad.write_bytes(data)
    out = open_each([bad], tmp_path, 256 * 1024)
    assert out[0].get("error") == "FormatError" and fragment in out[0]["message"], out
