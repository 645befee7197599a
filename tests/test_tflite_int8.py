"""int8 .tflite models imported with their own quantization (microdx.importers.tflite_int8): microdx's host reference
and the device give exactly the int8 outputs of TFLite's reference kernels (tools/make_tflite_fixtures.py: Keras
models through TensorFlow's converter with a representative dataset, outputs from ai-edge-litert's reference op
resolver on random and edge-case inputs), on every input: the unix port (pure Python and viper), qemu-m3 (asm and
viper on 32-bit ints), qemu-m0 (the RP2040's armv6m) and the ulab firmwares; before the softmax (the KWS logits) and
after it (TFLite's own int8 softmax, microdx.gemmlowp: the KWS network, and 304 rows through a SOFTMAX alone), and
TFLite's int8 MEAN, which it computes in float32 (304 rows through a MEAN alone: float32 natively on qemu-m3 and
CircuitPython, through float32 stores on the unix port)."""
import json
from pathlib import Path

import numpy as np
import pytest

from microdx import blob_reader, cli, data, emulator, pipeline, qemu, reference
from microdx.errors import FormatError
from microdx.importers import load
from microdx.ir import Graph, Layer
from microdx.quantize import quantize_graph
from helpers import open_each, rewrite_header

FIXTURES = Path(__file__).parent / "fixtures" / "tflite"
MODELS = ["mlp", "cnn", "kws_dscnn", "residual", "softmax", "mean", "gap_mean"]
# near each model's smallest budget (microdx inspect): layers run in several tiles, each a read of the blob
BUDGETS = {"mlp": 1500, "cnn": 1500, "kws_dscnn": None, "residual": 3300, "softmax": None, "mean": None,
           "gap_mean": None}


def _want(name):
    """(int8 inputs, TFLite's int8 outputs before any softmax, TFLite's final outputs)."""
    z = np.load(FIXTURES / f"{name}.npz")
    return z["x"], z["logits"] if "logits" in z else z["y"], z["y"]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tflite_int8")
    for name in MODELS:
        pipeline.convert(FIXTURES / f"{name}.tflite", d / f"{name}.dxb")
    return d


def _logit_graph(graph):
    """The graph without a final softmax layer: its output is TFLite's logits tensor."""
    return graph.copy(layers=graph.layers[:-1]) if graph.layers[-1].kind == "softmax" else graph


@pytest.mark.parametrize("name, kinds", [
    ("mlp", ["dense", "dense", "dense"]),                                   # RELU and RELU6 fused as clamps
    ("cnn", ["conv2d", "conv2d", "maxpool2d", "dense"]),                    # SAME (uneven) and VALID, strides
    ("kws_dscnn", ["conv2d", "dwconv2d", "conv2d", "dwconv2d", "conv2d", "avgpool2d", "dense", "softmax"]),
    ("residual", ["conv2d", "conv2d", "add", "avgpool2d", "dense"]),        # ADD of conv 0's output, fused RELU
    ("softmax", ["softmax"]),                                               # TFLite's fixed-point softmax alone
    ("mean", ["gap"]),                                                      # TFLite's float32 MEAN alone
    ("gap_mean", ["conv2d", "gap", "dense"]),                               # (its MEAN saturates: few distinct y)
])
def test_host_reference_equals_tflite_reference_kernels(name, kinds):
    g = load(FIXTURES / f"{name}.tflite")
    assert [layer.kind for layer in g.layers] == kinds and g.dtype == "i8"
    assert all(layer.attrs.get("rq") == (1 if layer.kind == "dense" else 2)
               for layer in g.layers if layer.kind in ("dense", "conv2d", "dwconv2d"))
    x, logits, final = _want(name)
    assert x.dtype == np.int8 and {-128, 127} <= set(np.unique(x))     # edge cases are among the inputs
    if len(g.layers) > 1:   # the logits (the softmax fixture's input is its logits)
        np.testing.assert_array_equal(reference.run(_logit_graph(g), x), logits.reshape(len(x), -1))
    np.testing.assert_array_equal(reference.run(g, x), final.reshape(len(x), -1))


def test_a_clamp_below_127_is_applied_alike(tmp_path):
    """A fused RELU6 whose 6.0 falls inside the int8 range clamps at hi (the converter's calibration usually puts 6.0
    at 127, as in the fixtures): one layer of the MLP with hi = 20, on the host and each unix backend."""
    g = load(FIXTURES / "mlp.tflite")
    one = g.copy(layers=[g.layers[0]], output_q=(g.layers[0].attrs["scale"], g.layers[0].attrs["zero"]))
    one.layers[0].attrs["hi"] = 20
    pipeline.blob_writer.write(one, tmp_path / "one.dxb")
    x = _want("mlp")[0]
    ref = reference.run(one, x)
    assert ref.max() == 20 and (ref == 20).sum() > 10
    for backend in ("python", "viper"):
        np.testing.assert_array_equal(emulator.run(tmp_path / "one.dxb", x, backend=backend).outputs, ref)


@pytest.mark.parametrize("backend", ["python", "viper"])
@pytest.mark.parametrize("name", MODELS)
def test_unix_port_equals_tflite(blobs, name, backend):
    x, logits, final = _want(name)
    graph = blob_reader.read(blobs / f"{name}.dxb").graph
    budget = BUDGETS[name]
    run = emulator.run(blobs / f"{name}.dxb", x.reshape(len(x), -1), board="rp2040", budget=budget, backend=backend)
    assert run.stats["backend"] == backend
    np.testing.assert_array_equal(run.outputs, reference.run(graph, x))
    np.testing.assert_array_equal(run.outputs, final.reshape(len(x), -1))


@pytest.mark.parametrize("target, backend", [("qemu-m3", "asm"), ("qemu-m3", "viper"), ("qemu-m0", "asm")])
def test_32_bit_mcus_equal_tflite(blobs, target, backend):
    if not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    for name in MODELS:
        x, logits, final = _want(name)
        x = x.reshape(len(x), -1)   # every input
        r = qemu.run(blobs / f"{name}.dxb", x, target, budget=BUDGETS[name], backend=backend)
        assert r["backend"] == backend
        np.testing.assert_array_equal(r["outputs"], final.reshape(len(final), -1)[:len(x)], err_msg=name)
        if name == "kws_dscnn" and target == "qemu-m3":
            # measured 32.1 M (41.8 M before the straight-line double rounding in requant_run)
            assert r["instructions_per_inference"] < 34_000_000, r


def test_kws_runs_in_the_rp2040_budget_and_inspect_shows_its_plan(blobs, tmp_path, capsys):
    assert cli.main(["inspect", str(blobs / "kws_dscnn.dxb"), "--board", "rp2040"]) == 0
    text = capsys.readouterr().out
    for part in ("conv2d", "dwconv2d", "avgpool2d", "softmax", "321,288 MACs", "RAM budget", "heap   fits"):
        assert part in text
    x, _, final = _want("kws_dscnn")
    np.savez(tmp_path / "codes.npz", x_q=x, y=final.argmax(axis=1))    # int8 codes, (N, 49, 10, 1) as TFLite's
    r = pipeline.evaluate(blobs / "kws_dscnn.dxb", data.load(tmp_path / "codes.npz"), device=True, board="rp2040")
    assert r["mismatches"] == 0 and r["accuracy"] == r["device_accuracy"] == 1.0   # TFLite's own arg-max
    assert r["peak_heap_bytes"] < 72_000    # measured 65,664 on the 64-bit unix port; the board has 196,608


def test_int8_tflite_refuses_float_and_recipes(tmp_path, capsys):
    for extra, what in ((["--float"], "--float"), (["--recipe", "prune:sparsity=0.5"], "a recipe")):
        assert cli.main(["convert", str(FIXTURES / "mlp.tflite"), "-o", str(tmp_path / "m.dxb"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"int8 model: microdx keeps its quantization as it is, so {what} cannot apply" in err
        assert not (tmp_path / "m.dxb").exists()


def test_the_residual_add_keeps_a_skip_buffer_in_the_ram_plan(blobs, capsys):
    assert cli.main(["inspect", str(blobs / "residual.dxb")]) == 0
    text = capsys.readouterr().out
    assert "add" in text and "skip buffer 512 bytes" in text       # conv 0's 8x8x8 output, kept for the add


def _add_entry(h):
    return next(e for e in h["layers"] if e["kind"] == "add")


@pytest.mark.parametrize("mutate, fragment", [
    (lambda h: _add_entry(h).update(skip=3), "adds layer 3"),                      # a later layer
    (lambda h: h["layers"].insert(3, {**_add_entry(h), "skip": 0}), "previous add"),  # two live skips
])
def test_bad_residual_headers_are_refused_by_host_and_device(blobs, tmp_path, mutate, fragment):
    data = rewrite_header((blobs / "residual.dxb").read_bytes(), mutate)
    with pytest.raises(FormatError):
        blob_reader.parse(data)
    (tmp_path / "bad.dxb").write_bytes(data)
    out = open_each([tmp_path / "bad.dxb"], tmp_path, 256 * 1024)
    assert out[0].get("error") == "FormatError" and fragment in out[0]["message"], out


def test_the_keras_route_through_the_cli(tmp_path, capsys):
    """What a Keras user runs: the converter's int8 file (tools/make_tflite_fixtures.py: a representative dataset,
    int8 in and out) -> microdx convert, no calibration -> microdx eval on the emulated board with int8 codes."""
    x, _, final = _want("residual")
    np.savez(tmp_path / "test.npz", x_q=x, y=final.argmax(axis=1))
    assert cli.main(["convert", str(FIXTURES / "residual.tflite"), "-o", str(tmp_path / "r.dxb"), "--board",
                     "rp2040"]) == 0
    out = capsys.readouterr().out
    assert "the .tflite 3,936 bytes" in out and "TFLite's integer arithmetic are kept" in out
    assert cli.main(["eval", str(tmp_path / "r.dxb"), "--data", str(tmp_path / "test.npz"), "--device",
                     "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["mismatches"] == 0 and r["accuracy"] == r["device_accuracy"] == 1.0


def test_an_add_in_a_graph_microdx_quantizes_runs_alike(tmp_path):
    """A residual add in a float graph (dense 6 -> 6, dense 6 -> 6, add of the first's output, dense 6 -> 3):
    float blob within float tolerance on the device, int8 blob (microdx's calibration, TFLite's ADD arithmetic)
    bit-exact, the skip taken from the input as well."""
    rng = np.random.default_rng(5)
    dense = [Layer("dense", f"d{i}", "f32", {"w": rng.normal(size=(m, 6)).astype(np.float32),
                                              "b": rng.normal(size=m).astype(np.float32)}, {"act": "relu"})
             for i, m in enumerate((6, 6, 3))]
    x = rng.normal(size=(40, 6))
    for skip in ("d0", None):
        g = Graph("res", (6,), [dense[0], dense[1], Layer("add", "a", "f32", {}, {"skip": skip, "act": "relu"}),
                                dense[2]])
        pipeline.blob_writer.write(g, tmp_path / "f.dxb")
        dev = emulator.run(tmp_path / "f.dxb", x.astype(np.float32)).outputs
        np.testing.assert_allclose(dev, reference.run(g, x), rtol=1e-4, atol=1e-4)
        q, _ = quantize_graph(g, x)
        pipeline.blob_writer.write(q, tmp_path / "q.dxb")
        xq = reference.prepare_input(q, x)
        ref = reference.run(q, xq)
        for backend in ("python", "viper"):
            np.testing.assert_array_equal(emulator.run(tmp_path / "q.dxb", xq, backend=backend).outputs, ref)
        fl = reference.run_float(g, x)
        assert (ref.argmax(axis=1) == fl.argmax(axis=1)).mean() >= 0.9


@pytest.mark.parametrize("firmware", ["micropython-ulab", "circuitpython"])
def test_ulab_firmwares_equal_tflite(blobs, firmware):
    """The ulab dot twins (dense and conv) with TFLite's requantization: micropython-ulab (ulab backend) and
    CircuitPython (float32 ulab, no native code, from source), on the CNN and the residual block."""
    exe = qemu.TARGETS / firmware
    if not exe.is_file():
        pytest.skip(f"needs ../shared/targets/{firmware}")
    for name in ("cnn", "residual", "mean"):
        x, logits, final = _want(name)
        x = x.reshape(len(x), -1)[:8]
        kw = {"backend": "ulab"} if firmware == "micropython-ulab" else {"source": True}
        run = emulator.run(blobs / f"{name}.dxb", x, heap=256 * 1024, firmware=exe, **kw)
        assert run.stats["backend"] == "ulab"
        np.testing.assert_array_equal(run.outputs, final.reshape(len(final), -1)[:8], err_msg=name)


def test_the_ram_plan_with_a_skip_buffer_is_the_devices(blobs):
    """microdx.ram's smallest budget for the residual block (skip buffer included) is the one the device accepts: a
    byte less is refused with the numbers."""
    from microdx import ram

    least = ram.plan(blob_reader.read(blobs / "residual.dxb").graph)["min_budget"]
    x = _want("residual")[0].reshape(16, -1)[:2]
    emulator.run(blobs / "residual.dxb", x, budget=least)
    with pytest.raises(emulator.DeviceError, match=f"model needs at least {least} bytes"):
        emulator.run(blobs / "residual.dxb", x, budget=least - 1)


def test_a_clamp_top_below_its_bottom_is_refused_by_host_and_device(blobs, tmp_path):
    def mutate(h):
        e = h["layers"][0]                       # the MLP's first layer: RELU, so the clamp starts at its zero point
        e["hi"] = e["zero"] - 1
    data = rewrite_header((blobs / "mlp.dxb").read_bytes(), mutate)
    with pytest.raises(FormatError, match="hi="):
        blob_reader.parse(data)
    (tmp_path / "bad.dxb").write_bytes(data)
    out = open_each([tmp_path / "bad.dxb"], tmp_path, 256 * 1024)
    assert out[0].get("error") == "FormatError" and "hi=" in out[0]["message"], out
