"""Board profiles, and that the emulation really uses their heap."""
import numpy as np
import pytest

from helpers import write_blob
from microdx.synthetic import random_int8
from microdx import boards, emulator
from microdx.errors import DeviceError, MicrodxError

REQUIRED = {"name", "title", "port", "heap_bytes", "sram_bytes", "flash_fs_bytes", "fpu", "float_bits",
            "smallint_bits", "viper", "mpy_march", "source"}


def test_profiles_are_complete():
    assert {"rp2040", "rp2350", "stm32f405", "stm32f411", "stm32h743", "circuitpython-pico", "unix"} <= set(boards.names())
    for name in boards.names():
        b = boards.load(name)
        assert REQUIRED <= b.keys() and b["name"] == name and b["heap_bytes"] > 0
        if b["sram_bytes"]:
            assert b["heap_bytes"] < b["sram_bytes"]
    assert boards.load("rp2040")["heap_bytes"] == 192 * 1024
    assert boards.load("stm32f411")["heap_bytes"] == 90 * 1024
    assert boards.load("stm32f405")["heap_bytes"] == 100 * 1024


def test_sizes():
    assert boards.parse_bytes("64K") == 65536 and boards.parse_bytes("1M") == 1 << 20 and boards.parse_bytes("900") == 900
    with pytest.raises(MicrodxError):
        boards.parse_bytes("lots")


def test_emulation_uses_the_board_heap(tmp_path):
    """A budget that fits the Pico's heap but not the F411's: only the F411 runs out of memory."""
    g, _ = random_int8([400, 500, 10], seed=1, n_calib=8)
    blob = write_blob(tmp_path / "m.dxb", g)
    x = np.zeros((1, 400), np.int8)
    budget = 120 * 1024
    assert emulator.run(blob, x, board="rp2040", budget=budget).stats["heap_bytes"] == 192 * 1024
    with pytest.raises(DeviceError) as e:
        emulator.run(blob, x, board="stm32f411", budget=budget)
    assert e.value.kind == "MemoryError"
