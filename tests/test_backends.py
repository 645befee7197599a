"""Kernel backends: viper (native code) where the firmware has it, pure Python everywhere else; the same integers.

The unix port runs both backends on every int8 kind; the emulated Cortex-M0 (the RP2040's armv6m) and Cortex-M3 run
viper with 32-bit machine ints; the board-like CircuitPython (no native emitter) falls back to pure Python. On the
Cortex-M3 the instruction counts are exact: viper's ceiling per MAC is asserted on a whole streamed model.
"""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import run_mpy
from microdx import blob_writer, emulator, qemu, ram, reference
from microdx.optimizers import get
from microdx.quantize import quantize_graph
from microdx.synthetic import random_graph, random_int8

TARGETS = Path(__file__).resolve().parents[2] / "shared" / "targets"
CIRCUITPYTHON = TARGETS / "circuitpython"
RNG = np.random.default_rng(71)


def _int8(sizes, recipe=None, seed=0):
    g = random_graph(sizes, seed=seed)
    if recipe:
        g = get(*recipe[:1], **recipe[1]).apply(g).graph
    return quantize_graph(g, RNG.normal(size=(64, sizes[0])))[0]


def _inputs(n, rows=6):
    return np.vstack([RNG.integers(-128, 128, size=(rows, n)), np.full((1, n), -128), np.full((1, n), 127),
                      np.tile([-128, 127], n)[None, :n]]).astype(np.int8)


# name -> (int8 graph, extra budget over the smallest): input counts not a multiple of 8 (the viper tail loop),
# one-row tiles and tiles that do not divide the rows, CSR with u8 and u16 indices
MODELS = {
    "dense-odd": (lambda: _int8([67, 33, 7], seed=1), 0),
    "dense-tiles": (lambda: _int8([64, 50, 10], seed=2), 150),
    "dense-wide": (lambda: _int8([300, 17, 5], seed=3), 500),
    "sparse-u8": (lambda: _int8([64, 97, 10], ("prune", {"sparsity": 0.85, "min_inputs": 1}), seed=4), 90),
    "sparse-u16": (lambda: _int8([300, 40, 6], ("prune", {"sparsity": 0.7, "min_inputs": 1}), seed=5), 0),
    "codebook-3": (lambda: _int8([67, 45, 10], ("kmeans", {"bits": 3, "min_inputs": 1}), seed=6), 40),
    "codebook-5": (lambda: _int8([30, 21, 4], ("kmeans", {"bits": 5, "min_inputs": 1}), seed=7), 0),
    "int16": (lambda: _int8([65, 33, 7], ("int16", {}), seed=8), 120),
    "conv-padded": (lambda: _cnn((9, 8, 3), [(7, (3, 3), (2, 1), (1, 1, 0, 2)), (5, (5, 3), (1, 1), (2, 2, 1, 1))]), 37),
    "conv-1x1": (lambda: _cnn((6, 7, 9), [(6, (1, 1), (1, 1), (0, 0, 0, 0))]), 0),
    "pools": (lambda: _pooled(), 0),
    "ds-cnn": (lambda: _dscnn((13, 10, 1), 6, [((3, 3), (1, 1), (1, 1, 1, 1)), ((3, 2), (2, 1), (0, 1, 1, 0))]), 31),
}


def _pooled():
    """conv -> max pool -> conv -> average pool (uneven padding) -> dense."""
    from microdx.ir import canonicalize, layer_shapes

    ops = [("conv2d", "c0", {"w": RNG.normal(size=(5, 3, 3, 2)) / 3, "b": RNG.normal(size=5) * 0.1,
                             "pad": np.array([1, 1, 1, 1])}), ("relu", "r0", {}),
           ("maxpool2d", "m", {"kernel": np.array([2, 2])}),
           ("conv2d", "c1", {"w": RNG.normal(size=(4, 1, 1, 5)) / 2, "b": RNG.normal(size=4) * 0.1}),
           ("avgpool2d", "a", {"kernel": np.array([3, 3]), "stride": np.array([2, 2]), "pad": np.array([1, 0, 1, 2])}),
           ("flatten", "f", {})]
    n = int(np.prod(layer_shapes(canonicalize("p", (12, 10, 2), ops))[-1][1]))
    g = canonicalize("p", (12, 10, 2), ops + [("dense", "d", {"w": RNG.normal(size=(3, n)) / 3})])
    return quantize_graph(g, RNG.uniform(0, 1, size=(48, 12, 10, 2)))[0]


def _dscnn(shape, ch, dws, classes=4):
    """conv 3x3 -> [depthwise (kernel, stride, pad) + pointwise 1x1] ... -> global average pool -> dense, ReLUs."""
    from microdx.ir import canonicalize

    ops = [("conv2d", "c0", {"w": RNG.normal(size=(ch, 3, 3, shape[2])) / 3, "b": RNG.normal(size=ch) * 0.1,
                             "stride": np.array([2, 2]), "pad": np.array([1, 1, 1, 1])}), ("relu", "r0", {})]
    for i, (kernel, stride, pad) in enumerate(dws):
        ops += [("dwconv2d", f"dw{i}", {"w": RNG.normal(size=(ch, *kernel)) / 2, "b": RNG.normal(size=ch) * 0.1,
                                        "stride": np.array(stride), "pad": np.array(pad)}), ("relu", f"d{i}", {}),
                ("conv2d", f"pw{i}", {"w": RNG.normal(size=(ch, 1, 1, ch)) / np.sqrt(ch),
                                      "b": RNG.normal(size=ch) * 0.1}), ("relu", f"p{i}", {})]
    g = canonicalize("dscnn", shape, ops + [("gap", "g", {}), ("dense", "fc", {"w": RNG.normal(size=(classes, ch)),
                                                                               "b": np.zeros(classes)})])
    return quantize_graph(g, RNG.uniform(0, 1, size=(48, *shape)))[0]


def _cnn(shape, convs, classes=4):
    """convs [(out, kernel, stride, pad)] with ReLU, then flatten and dense; calibrated on [0, 1] inputs, so padded
    cells hold the input zero point -128 (in_zero matters)."""
    from microdx.ir import canonicalize, layer_shapes

    ops, c = [], shape[2]
    for i, (out, kernel, stride, pad) in enumerate(convs):
        ops += [("conv2d", f"c{i}", {"w": RNG.normal(size=(out, *kernel, c)) / np.sqrt(np.prod(kernel) * c),
                                     "b": RNG.normal(size=out) * 0.1, "stride": np.array(stride),
                                     "pad": np.array(pad)}), ("relu", f"r{i}", {})]
        c = out
    n = int(np.prod(layer_shapes(canonicalize("c", shape, ops))[-1][1]))
    g = canonicalize("cnn", shape, ops + [("flatten", "f", {}), ("dense", "d", {"w": RNG.normal(size=(classes, n))
                                                                                / np.sqrt(n)})])
    return quantize_graph(g, RNG.uniform(0, 1, size=(48, *shape)))[0]


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("backends")
    out = {}
    for name, (make, extra) in MODELS.items():
        g = make()
        blob_writer.write(g, d / f"{name}.dxb")
        out[name] = (d / f"{name}.dxb", g, ram.plan(g)["min_budget"] + extra)
    return out


@pytest.mark.parametrize("backend", ["viper", "python"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_backend_is_bit_exact_on_the_unix_port(blobs, name, backend):
    path, g, budget = blobs[name]
    x = _inputs(g.input_size)
    run = emulator.run(path, x, heap=96 * 1024, budget=budget, backend=backend)
    assert run.stats["backend"] == backend
    np.testing.assert_array_equal(run.outputs, reference.run(g, x))


def test_viper_is_chosen_where_it_runs_and_can_be_switched_off(tmp_path):
    out = run_mpy("import udx\nprint(udx.backend())\nudx.use_backend('python')\nprint(udx.backend())\n"
                  "try:\n    udx.use_backend('cuda')\nexcept ValueError as e:\n    print(e)\n", tmp_path)
    assert out == ["viper", "python", "unknown backend 'cuda' (asm, viper, ulab, python)"]   # no asm_thumb on x64


def test_sparse_pointers_out_of_order_are_refused_by_both_backends(blobs, tmp_path):
    path, g, budget = blobs["sparse-u8"]
    layer = g.layers[0]
    ptr = layer.tensors["ptr"].astype(np.int64)
    # the second row pointer made larger than the third: CRCs recomputed by rewriting the graph's tensor
    bad = ptr.copy()
    bad[2] = bad[1] - 1 if bad[1] > 0 else bad[1]
    bad[1] = ptr[2]
    layer.tensors["ptr"] = bad.astype(np.int32)
    blob_writer.write(g, tmp_path / "bad.dxb")
    layer.tensors["ptr"] = ptr.astype(np.int32)
    for backend in ("viper", "python"):
        with pytest.raises(emulator.DeviceError, match="row pointer .* out of order"):
            emulator.run(tmp_path / "bad.dxb", _inputs(64, 1), budget=budget, backend=backend)
    if qemu.available("qemu-m0"):   # the asm twin checks every pointer before its one call per tile
        with pytest.raises(emulator.DeviceError, match="row pointer .* out of order"):
            qemu.run(tmp_path / "bad.dxb", _inputs(64, 1), "qemu-m0", budget=budget, backend="asm")


@pytest.mark.skipif(not CIRCUITPYTHON.is_file(), reason="needs ../shared/targets/circuitpython")
def test_circuitpython_pure_python_is_bit_exact(blobs, tmp_path):
    """CircuitPython has no native emitter (a viper decorator is a SyntaxError): udx loads and picks ulab (built in
    there; tests/test_ulab.py), use_backend("viper") is refused with ImportError, and the pure-Python backend gives
    the reference's integers."""
    lines = ["import array, binascii, udx", "print(udx.backend())",
             "try:\n    udx.use_backend('viper')\nexcept ImportError as e:\n    print('ImportError')",
             "udx.use_backend('python')"]
    xs = {}
    for name, (path, g, budget) in blobs.items():
        x = xs[name] = _inputs(g.input_size, rows=2)
        (tmp_path / f"{name}.bin").write_bytes(x.tobytes())
        lines.append(f"m = udx.Model({str(path)!r}, {budget})\nf = open({str(tmp_path / (name + '.bin'))!r}, 'rb')\n"
                     f"x = array.array('b', bytes(m.n_in))\nfor i in range({len(x)}):\n    f.readinto(x)\n"
                     f"    print({name!r}, binascii.hexlify(bytes(m.predict(x))).decode())\nf.close()")
    script = tmp_path / "cp.py"
    script.write_text("\n".join(lines) + "\n")
    env = {"MICROPYPATH": str(emulator.device_path(source=True)), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(CIRCUITPYTHON), "-X", "heapsize=256K", str(script)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.split("\n")
    assert out[:2] == ["ulab", "ImportError"]
    for name, (path, g, _) in blobs.items():
        got = [bytes.fromhex(ln.split()[1]) for ln in out if ln.startswith(name + " ")]
        device = np.frombuffer(b"".join(got), np.int8).reshape(len(got), -1)
        np.testing.assert_array_equal(device, reference.run(g, xs[name]), err_msg=name)


@pytest.mark.parametrize("target", ["qemu-m0", "qemu-m3"])
@pytest.mark.parametrize("backend", ["asm", "viper"])
def test_native_backends_on_the_mcu_instruction_sets(blobs, target, backend):
    """qemu-m0 executes armv6m only, as the RP2040's Cortex-M0+ (a Thumb-2 instruction would fault), qemu-m3 has
    31-bit small ints and 32-bit viper ints: on both the viper twins and the asm_thumb loops compiled for them are
    bit-exact on every test model (odd shapes, uneven tiles, extreme inputs); asm is what udx picks there."""
    if not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    for name, (path, g, budget) in blobs.items():
        x = _inputs(g.input_size, rows=3)
        r = qemu.run(path, x, target, budget=budget, backend=backend)
        assert r["backend"] == backend
        np.testing.assert_array_equal(r["outputs"], reference.run(g, x), err_msg=name)


VIPER_MAC_CEILING = 30        # instructions per MAC on qemu-m3, whole model: streaming and requantization included
ASM_MAC_CEILING = 15          # the same with the Arm Thumb inner loop (measured 11.8)


# (model, where the blob is read from) -> (viper ceiling, asm ceiling), instructions per MAC on qemu-m3 over a whole
# model, streaming (or in-place reads) and requantization included. Measured on the model below: dense 25.1 / 11.8
# from /flash, 23.1 / 9.8 from /rom; CSR streamed from /flash copies 3 bytes per weight into RAM first: 45.7 / 32.6;
# read in place from a memory-mapped ROMFS image (udx.inplace) it costs about what the kernel costs: 28.7 / 16.7
# (23.6 / 11.9 on the wider 650-1000-1000-6 model of `microdx bench models`, whose rows hold more weights)
MAC_CEILINGS = {("dense", "/flash/"): (VIPER_MAC_CEILING, ASM_MAC_CEILING),
                ("dense", "/rom/"): (VIPER_MAC_CEILING, ASM_MAC_CEILING),
                ("csr", "/flash/"): (48, 34),
                ("csr", "/rom/"): (VIPER_MAC_CEILING, 18)}


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
@pytest.mark.parametrize("kind, folder", list(MAC_CEILINGS))
def test_viper_dense_and_csr_cost_at_most_30_instructions_per_mac_on_cortex_m3(kind, folder):
    """650-512-512-6 int8 (597 KB of weights, 16 KB budget: streamed in tiles) and the same 80% pruned (CSR), from
    /flash and from the memory-mapped /rom, one inference per backend in one run: viper within its ceiling, and
    at least 20x fewer instructions than pure Python."""
    g = _int8([650, 512, 512, 6], ("prune", {"sparsity": 0.8}) if kind == "csr" else None, seed=8)
    assert {layer.kind for layer in g.layers} == {"sparse" if kind == "csr" else "dense"}
    x = _inputs(650, rows=1)[:1]
    script = (f"import array, binascii, time, udx\nm = udx.Model({folder + 'm.dxb'!r}, 16384)\n"
              "x = array.array('b', open('/flash/in.bin', 'rb').read())\n"
              "for b in ('asm', 'viper', 'python'):\n    udx.use_backend(b)\n    t0 = time.ticks_us()\n"
              "    y = m.predict(x)\n    t = time.ticks_diff(time.ticks_us(), t0)\n"
              "    print(b, t * 1000, m.macs, m.in_place, binascii.hexlify(bytes(y)).decode())\n")
    proc = qemu.run_script("qemu-m3", script, {"m.dxb": blob_writer.pack(g), "in.bin": x.tobytes()}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {ln.split()[0]: ln.split()[1:] for ln in proc.stdout.splitlines()
            if ln.split()[:1] in (["asm"], ["viper"], ["python"])}
    expected = reference.run(g, x)[0].astype(np.int8).tobytes().hex()
    per_mac = {b: int(rows[b][0]) / int(rows[b][1]) for b in rows}
    print(f"qemu-m3 650-512-512-6 {kind} from {folder}: {per_mac['asm']:.1f} instructions per MAC (asm), "
          f"{per_mac['viper']:.1f} (viper), {per_mac['python']:.1f} (pure Python)")
    assert rows["asm"][3] == rows["viper"][3] == rows["python"][3] == expected
    assert rows["viper"][2] == ("None" if folder == "/flash/" else "3")   # in place from /rom
    viper, asm = MAC_CEILINGS[kind, folder]
    assert per_mac["viper"] <= viper and per_mac["python"] >= 20 * per_mac["viper"], per_mac
    assert per_mac["asm"] <= asm, per_mac
