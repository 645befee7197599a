"""The ulab backend on the real ulab firmwares (../shared/targets/micropython-ulab: MicroPython 1.28 + ulab 6.12,
float64; ../shared/targets/circuitpython: CircuitPython 10.2.1, float32, no native code): every test model bit-exact
with the host reference, ulab's dot used only where its float sums are exact integers, and the backend CircuitPython
picks by itself. The kernel-level test builds a tile whose sums pass 2**24, where float32 would round: its bias
cancels the sum, so the output shows the low bits that a single unsplit float32 dot loses."""
import subprocess

import numpy as np
import pytest

from microdx import emulator, reference
from microdx import blob_writer
from test_backends import CIRCUITPYTHON, MODELS, TARGETS, _cnn, _inputs, blobs  # noqa: F401  (blobs: a fixture)

MICROPYTHON_ULAB = TARGETS / "micropython-ulab"
needs_ulab = pytest.mark.skipif(not MICROPYTHON_ULAB.is_file(), reason="needs ../shared/targets/micropython-ulab")
needs_cp = pytest.mark.skipif(not CIRCUITPYTHON.is_file(), reason="needs ../shared/targets/circuitpython")

TILE_SCRIPT = """
import array, random, struct
from udx import dense, dense_ulab
random.seed(5)
n, r = 1100, 3   # 255 * 127 * 1100 = 35.6 M > 2**24: a float32 sum of these would round
for trial in range(4):
    w = bytearray(random.getrandbits(8) if trial else 255 for _ in range(r * n))
    xb = bytearray(random.getrandbits(8) if trial else 127 for _ in range(n))
    xi = [v - 256 if v > 127 else v for v in xb]
    xs = sum(xi) << 7
    tail = bytearray()
    for j in range(r):   # bias = -(exact sum) + 40 + j, multiplier 65535 / 2**17: the output is about (40 + j) / 2
        tail += struct.pack("<i", -(sum(w[j * n + i] * xi[i] for i in range(n)) - xs) + 40 + j)
    for j in range(r):
        tail += struct.pack("<I", 65535 | (17 << 16))
    x = array.array("b", xb)
    ya = array.array("b", bytes(r))
    yb = array.array("b", bytes(r))
    dense.dense_tile(w + tail, x, ya, n, r, 0, xs, 0, -128, 127, 0)
    dense_ulab.dense_tile(w + tail, x, yb, n, r, 0, xs, 0, -128, 127, 0)
    print("tile", list(ya), list(yb))
print("chunk", dense_ulab.CHUNK)
"""


def _run(exe, script, tmp_path):
    (tmp_path / "s.py").write_text(script)
    env = {"MICROPYPATH": str(emulator.device_path(source=True)), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(exe), "-X", "heapsize=512K", str(tmp_path / "s.py")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split("\n")


@needs_ulab
@pytest.mark.parametrize("backend", ["ulab", "viper", "python"])
def test_every_model_is_bit_exact_on_micropython_ulab(blobs, backend):   # noqa: F811
    for name, (path, g, budget) in blobs.items():
        x = _inputs(g.input_size)
        run = emulator.run(path, x, heap=192 * 1024, budget=budget, backend=backend, firmware=MICROPYTHON_ULAB)
        assert run.stats["backend"] == backend
        np.testing.assert_array_equal(run.outputs, reference.run(g, x), err_msg=name)


@needs_cp
def test_every_model_is_bit_exact_with_ulab_on_circuitpython(blobs):   # noqa: F811
    """CircuitPython picks ulab by itself (no native emitter); the wide dense layer (300 inputs) and the rest."""
    for name, (path, g, budget) in blobs.items():
        x = _inputs(g.input_size, rows=3)
        run = emulator.run(path, x, heap=256 * 1024, budget=budget, firmware=CIRCUITPYTHON, source=True)
        assert run.stats["backend"] == "ulab"
        np.testing.assert_array_equal(run.outputs, reference.run(g, x), err_msg=name)


@needs_cp
def test_ulab_dot_is_split_where_float32_would_round(tmp_path):
    out = _run(CIRCUITPYTHON, TILE_SCRIPT, tmp_path)
    assert "chunk 514" in out   # float32: 255 * 128 * 514 < 2**24
    tiles = [ln for ln in out if ln.startswith("tile")]
    assert len(tiles) == 4
    for ln in tiles:   # "tile [reference outputs] [ulab outputs]"
        ref, ulab = ln[len("tile "):].split("] [")
        assert ref.lstrip("[") == ulab.rstrip("]"), ln
    assert tiles[0] == "tile [20, 20, 21] [20, 20, 21]"


@needs_ulab
def test_backend_choice_on_the_ulab_firmwares(tmp_path):
    script = ("import udx\nprint(udx.backend())\nudx.use_backend('ulab')\nprint(udx.backend())\n"
              "try:\n    udx.use_backend('asm')\nexcept ImportError:\n    print('no asm')\n")
    assert _run(MICROPYTHON_ULAB, script, tmp_path)[:3] == ["viper", "ulab", "no asm"]   # viper is faster on x64
    if CIRCUITPYTHON.is_file():
        assert _run(CIRCUITPYTHON, script.replace("asm", "viper") + "from udx import conv2d, dense\n"
                    "print(dense.dense_ulab is not None, conv2d.conv2d_ulab is not None)\n",
                    tmp_path)[:4] == ["ulab", "ulab", "no viper", "True True"]
    no_ulab = subprocess.run([emulator.micropython(), "-c", "import udx\ntry:\n    udx.use_backend('ulab')\n"
                              "except ImportError as e:\n    print(e)"], capture_output=True, text=True,
                             env={"MICROPYPATH": str(emulator.device_path(source=True))})
    assert "no ulab backend on this firmware" in no_ulab.stdout


@needs_cp
def test_conv_windows_beyond_the_exact_bound_use_the_reference(tmp_path):
    """A 3x3 window over 64 channels has 576 weights, more than a float32 dot keeps exact (514): the ulab conv twin
    hands it to the reference; a 3x3 window over 8 channels (72) goes through ulab; both bit-exact."""
    for shape, out in (((6, 6, 64), 8), ((12, 12, 8), 12)):
        g = _cnn(shape, [(out, (3, 3), (1, 1), (1, 1, 1, 1))])
        blob_writer.write(g, tmp_path / "c.dxb")
        x = _inputs(g.input_size, rows=3)
        run = emulator.run(tmp_path / "c.dxb", x, heap=512 * 1024, firmware=CIRCUITPYTHON, source=True)
        assert run.stats["backend"] == "ulab"
        np.testing.assert_array_equal(run.outputs, reference.run(g, x), err_msg=str(shape))
