"""The int8 runtime on real MCU arithmetic: MicroPython on an emulated 32-bit Cortex-M3 (../shared/targets/qemu-m3,
31-bit small ints, single-precision floats) gives the host reference's integers for trained models whose weights
exercise the quantizer's edge cases: dead units with floored row scales (tiny multipliers, the largest shifts),
clipped row scales after a folded StandardScaler, a tiled layer, CSR-sparse layers (u8 and u16 indices), 3-bit
codebook layers, int16-weight layers and a two-conv CNN; float blobs (float16 weights, a float conv) within float32
rounding. Skips when the target or QEMU is absent."""
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from microdx import blob_writer, data, emulator, pipeline, ram, reference
from microdx.importers import npz
from microdx.ir import canonicalize
from microdx.quantize import quantize_graph
from microdx.optimizers import get
from microdx.synthetic import random_graph, random_int8

RUN = Path(__file__).resolve().parents[2] / "shared" / "targets" / "qemu-m3" / "run"
pytestmark = pytest.mark.skipif(not RUN.is_file() or not shutil.which("qemu-system-arm"),
                                reason="needs ../shared/targets/qemu-m3 and qemu-system-arm (apt-get install)")

DEVICE_SCRIPT = """
import array, binascii, time, udx
for name, budget, count in JOBS:
    m = udx.Model("/flash/" + name + ".dxb", budget)
    x = array.array("b", bytes(m.n_in))
    t = 0
    f = open("/flash/" + name + ".bin", "rb")    # the board-like /flash stream is not a context manager
    for i in range(count):
        f.readinto(x)
        t0 = time.ticks_us()
        y = m.predict(x)
        t += time.ticks_diff(time.ticks_us(), t0)
        print(name, binascii.hexlify(bytes(y)).decode())
    f.close()
    print("instructions", name, t * 1000, m.macs * count)
    m.close()
"""


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def _models(tmp):
    """name -> (int8 graph, int8 inputs, budget)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_tr, x_te, y_tr, _ = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((64, 32), random_state=2).fit(x_tr, y_tr)       # has dead units (max|w| ~ 4e-7)
    g = canonicalize("d", (64,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(npz.from_sklearn_mlp(clf))])
    dead, notes = quantize_graph(g, x_tr)
    assert any("floored" in n for n in notes)
    edges = np.array([[-128] * 64, [127] * 64, [-128, 127] * 32], dtype=np.int8)
    fixture = Path(__file__).parent / "fixtures" / "onnx" / "skl_pipeline_scaler.onnx"
    pipeline.convert(fixture, tmp / "scaler_src.dxb", calib=data.from_arrays(x_tr * 16))
    scaler = pipeline.read_blob(tmp / "scaler_src.dxb").graph
    tiled, _ = random_int8([64, 300, 10], seed=4)
    rng = np.random.default_rng(0)
    sparse8, sparse16 = (quantize_graph(get("prune", sparsity=0.85, min_inputs=1).apply(random_graph(sizes, seed=5)).graph,
                                        rng.normal(size=(64, sizes[0])))[0] for sizes in ([64, 97, 10], [300, 40, 6]))
    assert {layer.kind for layer in sparse8.layers + sparse16.layers} == {"sparse"}
    shared, _ = quantize_graph(get("kmeans", bits=3, min_inputs=1).apply(random_graph([64, 45, 10], seed=6)).graph,
                               rng.normal(size=(64, 64)))
    assert {layer.kind for layer in shared.layers} == {"codebook"}
    wide, _ = quantize_graph(get("int16").apply(random_graph([150, 45, 10], seed=7)).graph, rng.normal(size=(64, 150)))
    assert {layer.kind for layer in wide.layers} == {"dense16"}
    cnn, cnn_x = _cnn(rng)
    return {
        "dead": (dead, np.vstack([reference.prepare_input(dead, x_te[:30]), edges]), None),
        "scaler": (scaler, np.vstack([reference.prepare_input(scaler, x_te[:30] * 16), edges]), None),
        "tiled": (tiled, rng.integers(-128, 128, size=(10, 64)).astype(np.int8), 2048),   # 300 rows in tiles
        "sparse8": (sparse8, np.vstack([rng.integers(-128, 128, size=(8, 64)), edges[:, :64]]).astype(np.int8), 700),
        "sparse16": (sparse16, rng.integers(-128, 128, size=(6, 300)).astype(np.int8), 1700),   # u16 indices
        "codebook3": (shared, np.vstack([rng.integers(-128, 128, size=(6, 64)), edges[:, :64]]).astype(np.int8), 500),
        "int16": (wide, np.vstack([rng.integers(-128, 128, size=(6, 150)), np.full((2, 150), -128), np.full((2, 150), 127)
                                   ]).astype(np.int8), 1500),   # 45 rows of 308 bytes: tiles of 4, the last of 1
        # 8 + 7 channels of 35 and 80 bytes in a 230-byte scratch: tiles of 6 + 2 and 2 + 2 + 2 + 1
        "conv": (cnn, cnn_x, ram.plan(cnn)["activation_bytes"] + 230),
    }


def _cnn(rng):
    """int8 CNN on a 12x10x3 input: conv 3x3 stride 2 SAME (pad bottom/right) -> relu -> conv 3x3 pad 1 -> relu ->
    flatten -> dense 10; calibrated on [0, 1] inputs, so padding cells hold the input zero point -128."""
    ops, c = [], 3
    for i, (out, stride, pad) in enumerate([(8, (2, 2), (0, 1, 0, 1)), (7, (1, 1), (1, 1, 1, 1))]):
        w = rng.normal(size=(out, 3, 3, c)) / np.sqrt(9 * c)
        ops += [("conv2d", f"c{i}", {"w": w, "b": rng.normal(size=out) * 0.1, "stride": np.array(stride),
                                     "pad": np.array(pad)}), ("relu", f"r{i}", {})]
        c = out
    ops += [("flatten", "f", {}), ("dense", "d", {"w": rng.normal(size=(10, 6 * 5 * 7)) / np.sqrt(210),
                                                  "b": rng.normal(size=10) * 0.1})]
    calib = rng.uniform(0, 1, size=(48, 12, 10, 3))
    g, _ = quantize_graph(canonicalize("cnn", (12, 10, 3), ops), calib)
    assert [layer.kind for layer in g.layers] == ["conv2d", "conv2d", "dense"] and g.layers[0].attrs["in_zero"] == -128
    edges = np.array([[-128] * 360, [127] * 360, [-128, 127] * 180], dtype=np.int8)
    return g, np.vstack([reference.prepare_input(g, calib[:8]), edges])


def test_int8_models_are_bit_exact_on_cortex_m3(tmp_path):
    models = _models(tmp_path)
    flash = tmp_path / "flash"
    shutil.copytree(emulator.compiled_device_dir("armv7m") / "udx", flash / "udx")
    jobs = []
    for name, (graph, x, budget) in models.items():
        blob_writer.write(graph, flash / f"{name}.dxb")
        (flash / f"{name}.bin").write_bytes(x.tobytes())
        jobs.append((name, budget, len(x)))
    script = tmp_path / "script.py"
    script.write_text(f"JOBS = {jobs!r}\n" + DEVICE_SCRIPT)
    proc = subprocess.run([str(RUN), str(flash), str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()]
    for name, (graph, x, _) in models.items():
        got = [bytes.fromhex(ln[1]) for ln in lines if ln[0] == name]
        device = np.frombuffer(b"".join(got), dtype=np.int8).reshape(len(got), -1)
        np.testing.assert_array_equal(device, reference.run(graph, x), err_msg=name)
    counts = [ln for ln in lines if ln[0] == "instructions"]
    assert len(counts) == len(models)
    for _, name, instructions, macs in counts:   # a figure for the log (pytest -s), not an assertion on speed
        print(f"qemu-m3 {name}: {int(instructions) / int(macs):.0f} instructions per MAC (pure-Python kernels)")


FLOAT_SCRIPT = """
import array, struct, udx
for name, budget, count in JOBS:
    m = udx.Model("/flash/" + name + ".dxb", budget)
    x = array.array("f", bytes(4 * m.n_in))
    f = open("/flash/" + name + ".bin", "rb")
    for i in range(count):
        f.readinto(x)
        y = m.predict(x)
        print(name, " ".join(repr(v) for v in y))
    f.close()
    m.close()
"""


def test_float_kernels_on_cortex_m3(tmp_path):
    """Float blobs on single-precision floats: float16 weights (struct 'e' on the MCU), a mixed float16/float32
    model, and a float conv, in tiles; outputs within float32 rounding of the host's float32 reference."""
    from microdx import ram
    from microdx.quantize import float_graph

    rng = np.random.default_rng(9)
    half = float_graph(get("f16", layers="fc0").apply(random_graph([65, 40, 7], seed=12)).graph)
    assert [layer.kind for layer in half.layers] == ["dense16", "dense"]
    conv = canonicalize("cnn", (9, 8, 3), [("conv2d", "c", {"w": rng.normal(size=(6, 3, 3, 3)) / 5,
                                                             "b": rng.normal(size=6) * 0.1, "stride": np.array([2, 1]),
                                                             "pad": np.array([1, 1, 0, 2])}), ("relu", "r", {}),
                                           ("flatten", "f", {}), ("dense", "d", {"w": rng.normal(size=(5, 240)) / 16})])
    models = {"half": (half, rng.normal(size=(5, 65))), "fconv": (conv, rng.normal(size=(5, 9 * 8 * 3)))}
    flash = tmp_path / "flash"
    shutil.copytree(emulator.compiled_device_dir("armv7m") / "udx", flash / "udx")
    jobs = []
    for name, (graph, x) in models.items():
        blob_writer.write(graph, flash / f"{name}.dxb")
        (flash / f"{name}.bin").write_bytes(x.astype("<f4").tobytes())
        jobs.append((name, ram.plan(graph)["min_budget"] + 100, len(x)))      # tiles
    script = tmp_path / "script.py"
    script.write_text(f"JOBS = {jobs!r}\n" + FLOAT_SCRIPT)
    proc = subprocess.run([str(RUN), str(flash), str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()]
    for name, (graph, x) in models.items():
        device = np.array([[float(v) for v in ln[1:]] for ln in lines if ln[0] == name])
        expected = reference.run(graph, x.astype(np.float32))
        np.testing.assert_allclose(device, expected, rtol=1e-4, atol=1e-4, err_msg=name)
