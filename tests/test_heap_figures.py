"""Heap figures mean device RAM: independent of host paths, and a heap too small for udx says what it needs."""
import tempfile

import numpy as np
import pytest

from helpers import write_blob
from microdx import emulator
from microdx.errors import DeviceError
from microdx.synthetic import random_int8


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    g, _ = random_int8([120, 64, 32, 9], seed=0)
    return write_blob(tmp_path_factory.mktemp("heap") / "m.dxb", g)


def test_figures_do_not_depend_on_the_temporary_folder(blob, tmp_path):
    """The .mpy cache and the run's scratch folder both live in the temporary folder; its path length used to
    change runtime_heap_bytes (MicroPython keeps module file names on its heap)."""
    x = np.zeros((2, 120), np.int8)
    stats = []
    for name in ("t", "t" * 120):
        folder = tmp_path / name
        folder.mkdir()
        old = tempfile.tempdir
        tempfile.tempdir = str(folder)
        emulator.compiled_device_dir.cache_clear()
        try:
            run = emulator.run(blob, x, board="rp2040")
            assert emulator.compiled_device_dir().parent == folder
        finally:
            tempfile.tempdir = old
            emulator.compiled_device_dir.cache_clear()
        stats.append((run.stats["runtime_heap_bytes"], run.stats["peak_heap_bytes"]))
    assert stats[0] == stats[1], stats


def test_figures_do_not_depend_on_the_number_of_inputs_or_the_blob_path(blob, tmp_path):
    """Counts once reached MicroPython as arguments, which it interns: 1 and 2 inputs gave figures 128 bytes apart."""
    other = tmp_path / ("long" * 30) / "renamed.dxb"
    other.parent.mkdir()
    other.write_bytes(blob.read_bytes())
    m = emulator.measure(blob)
    for path, n, progress in ((blob, 1, None), (blob, 2, None), (other, 333, []), (other, 2, [])):
        s = emulator.run(path, np.zeros((n, 120), np.int8), progress=None if progress is None else progress.append)
        assert (s.stats["runtime_heap_bytes"], s.stats["peak_heap_bytes"]) == (
            m["runtime_heap_bytes"], m["peak_heap_bytes"]), (path.name, n)


def test_heap_too_small_for_udx_says_what_it_needs(blob):
    with pytest.raises(DeviceError) as e:
        emulator.run(blob, np.zeros((1, 120), np.int8), heap=16 * 1024)
    m = emulator.measure(blob)
    msg = e.value.message
    assert e.value.kind == "MemoryError"
    assert msg.startswith("heap 16,384 bytes is too small: ")
    assert f"udx needs {m['runtime_heap_bytes']:,} bytes for its code" in msg
    assert f"the model's buffers (budget) {m['budget_bytes']:,} bytes" in msg
    assert f"peak {m['peak_heap_bytes']:,} bytes measured with a large heap" in msg
    smallest = int(msg.split("the smallest heap that runs it is about ")[1].split(" ")[0].replace(",", ""))
    assert f"short by {smallest - 16 * 1024:,} bytes" in msg and "use a board with more heap" in msg
    assert emulator.runs_in(blob, smallest) and smallest > m["peak_heap_bytes"]


def test_smallest_heap_is_found_within_its_resolution(blob):
    smallest = emulator.smallest_heap(blob, guess=40 * 1024)
    assert emulator.runs_in(blob, smallest)
    assert not emulator.runs_in(blob, smallest - max(512, smallest // 64) - 64)
