"""What opening a model and running it cost on the heap: open allocates per layer, not per byte of weights (CRCs
are checked through the scratch buffer in a few large reads), payload checks can be skipped on trusted storage, and
predict() on int8 dense models allocates nothing (views of the scratch are made once, at open)."""
import shutil
import subprocess

import numpy as np
import pytest

from helpers import run_mpy
from microdx import blob_writer, emulator, qemu
from microdx.synthetic import random_int8

# MicroPython: open each blob with the collector off and print what open() allocated beyond the buffers, and what
# three predict() calls allocate after one (inside a function: a new global would grow the module's dict)
MEASURE = """
import gc, array, udx


def measure(path, verify):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    m = udx.Model(path, 16384, verify)
    b = gc.mem_alloc()
    x = array.array("b", bytes(m.n_in))
    m.predict(x)
    c = gc.mem_alloc()
    for i in range(3):
        m.predict(x)
    d = gc.mem_alloc()
    print(b - a - m.act_bytes - m.scratch_bytes, d - c)
    m.close()
    gc.enable()


for job in JOBS:
    measure(*job)
"""


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    d = tmp_path_factory.mktemp("open")
    out = []
    for sizes in ([650, 60, 60, 6], [650, 300, 300, 6], [650, 1000, 1000, 6]):   # 45 KB, 290 KB, 1.66 MB
        g, _ = random_int8(sizes, seed=2, n_calib=16)
        blob_writer.write(g, d / f"m{sizes[1]}.dxb")
        out.append(d / f"m{sizes[1]}.dxb")
    return out


def test_open_allocates_per_layer_not_per_byte_and_predict_allocates_nothing(blobs, tmp_path):
    jobs = [(str(p), True) for p in blobs]
    lines = run_mpy(f"JOBS = {jobs!r}\n" + MEASURE, tmp_path, heap=512 * 1024)
    opened = [int(ln.split()[0]) for ln in lines]
    predict = [int(ln.split()[1]) for ln in lines]
    assert predict == [0, 0, 0]
    # beyond the buffers: the header (read twice), record metas, plans and the temporaries the activation arrays are
    # built from (1,000 wide against 60: most of the difference); 37x the weights add less than 2 KB
    assert max(opened) - min(opened) <= 2048 and max(opened) < 48 * 1024, opened


def test_verify_false_skips_payload_crcs_but_not_the_header(blobs, tmp_path):
    data = bytearray(blobs[0].read_bytes())
    data[-40] ^= 0xFF                         # a payload byte of the last layer: only its CRC can tell
    bad = tmp_path / "bad.dxb"
    bad.write_bytes(bytes(data))
    code = ("import udx\nfor verify in (True, False):\n    try:\n        udx.Model(%r, 16384, verify).close()\n"
            "        print('opened')\n    except udx.UdxError as e:\n        print(type(e).__name__)\n" % str(bad))
    assert run_mpy(code, tmp_path) == ["ChecksumError", "opened"]
    header = bytearray(blobs[0].read_bytes())
    header[20] ^= 0xFF                        # inside the header: refused whatever verify says
    (tmp_path / "badh.dxb").write_bytes(bytes(header))
    assert run_mpy(code.replace(str(bad), str(tmp_path / "badh.dxb")), tmp_path) == ["ChecksumError"] * 2


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
def test_on_cortex_m3_open_allocates_per_layer_and_predict_nothing(blobs, tmp_path):
    """31-bit small ints: CRCs become long ints on the heap there, once per read; reads are few and large."""
    flash = tmp_path / "flash"
    shutil.copytree(emulator.compiled_device_dir(qemu.ARCH["qemu-m3"]) / "udx", flash / "udx")
    jobs = []
    for p in blobs[:2]:
        shutil.copy(p, flash / p.name)
        jobs += [("/flash/" + p.name, True), ("/rom/" + p.name, False)]
    script = tmp_path / "s.py"
    script.write_text(f"JOBS = {jobs!r}\n" + MEASURE)
    proc = subprocess.run([str(qemu.TARGETS / "qemu-m3" / "run"), str(flash), str(script)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [[int(v) for v in ln.split()] for ln in proc.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 4 and [r[1] for r in rows] == [0, 0, 0, 0], rows
    # 6.4x the weights: a few hundred bytes more (one long-int CRC per large read), not O(bytes)
    assert max(r[0] for r in rows) < 32 * 1024 and abs(rows[0][0] - rows[2][0]) <= 1024, rows


IMPORT_CEILING_M3 = 23 * 1024    # bytes of heap `import udx` takes on qemu-m3 (asm backend): measured 23,312 (22,944 before in-place ROMFS reads)


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
def test_import_udx_heap_on_cortex_m3_stays_under_its_ceiling(tmp_path):
    """`import udx` on a 32-bit MCU: the code, the kernel table and the dense twins, nothing of a model. It grew from
    15 KB (the slice) to 22 KB with the native backends; the ceiling keeps it from growing unnoticed."""
    flash = tmp_path / "flash"
    shutil.copytree(emulator.compiled_device_dir(qemu.ARCH["qemu-m3"]) / "udx", flash / "udx")
    script = tmp_path / "s.py"
    script.write_text("import gc\ngc.collect()\na = gc.mem_alloc()\nimport udx\ngc.collect()\n"
                      "print('heap', gc.mem_alloc() - a, udx.backend())\n")
    proc = subprocess.run([str(qemu.TARGETS / "qemu-m3" / "run"), str(flash), str(script)], capture_output=True,
                          text=True, timeout=300)
    line = next(ln.split() for ln in proc.stdout.splitlines() if ln.startswith("heap "))
    print(f"qemu-m3: import udx takes {int(line[1]):,} bytes of heap ({line[2]} backend)")
    assert line[2] == "asm" and int(line[1]) <= IMPORT_CEILING_M3, line
