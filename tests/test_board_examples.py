"""boards/<board>/: every board has its profile, a README that says how it was exercised, and an example that runs.

The examples' microphones cannot be heard here, so each runs with its board's hardware modules replaced by
stand-ins that play a recording (machine.I2S, machine.Pin on MicroPython; audiobusio, board, digitalio on
CircuitPython): the MicroPython examples on the board's instruction set in QEMU (qemu-m0, -m3, -m33) with the
board's heap, the CircuitPython one on ../shared/targets/circuitpython.
What is real is everything after the microphone: the blob, udx's front-end on the samples as the board's driver
delivers them (32-bit I2S slots, or 16 kHz unsigned PDM samples), the model, the label and the LED. The label equals
the host's for the same clip."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from microdx import audio, blob_reader, boards, bundled, emulator, qemu, reference
from microdx.paths import repo_dir

CIRCUITPYTHON = Path(__file__).resolve().parents[2] / "shared" / "targets" / "circuitpython"
BOARDS = repo_dir("boards")
MICROPHONE_BOARDS = ["rp2040", "rp2350", "stm32f405", "stm32f411", "stm32h743"]
# the kws-digits variant each example names in its header
VARIANT = {"rp2040": "rp2040", "rp2350": "rp2040", "stm32f405": "stm32f411", "stm32f411": "stm32f411",
           "stm32h743": "rp2040", "circuitpython-pico": "stm32f411"}

MACHINE = """
import sys


class Pin:
    OUT = 1

    def __init__(self, name, mode=None):
        self.name = name

    def value(self, v=None):
        if v is not None:
            print("led", self.name, v)


class I2S:
    RX = 0
    MONO = 0

    def __init__(self, bus, sck, ws, sd, mode, bits, format, rate, ibuf):
        assert bits == 32 and rate == 8000, (bits, rate)
        self.f = open("mic.bin", "rb")   # the recording, as 32-bit slots with the sample in the top 16 bits

    def readinto(self, buf):
        return self.f.readinto(buf)


class machine:
    Pin = Pin
    I2S = I2S


sys.modules["machine"] = machine
"""

CIRCUITPY_HW = """
import sys


class PDMIn:
    def __init__(self, clock, data, sample_rate, bit_depth):
        assert sample_rate == 16000 and bit_depth == 16, (sample_rate, bit_depth)
        self.f = open("mic.bin", "rb")   # unsigned 16-bit samples at 16 kHz

    def record(self, buf, n):
        return self.f.readinto(memoryview(buf)[:n]) // 2


class DigitalInOut:
    def __init__(self, pin):
        self.pin = pin

    def __setattr__(self, k, v):
        if k == "value":
            print("led", self.pin, int(v))
        object.__setattr__(self, k, v)


class Direction:
    OUTPUT = 1


class audiobusio:
    PDMIn = PDMIn


class board:
    GP2 = "GP2"
    GP3 = "GP3"
    LED = "LED"


class digitalio:
    DigitalInOut = DigitalInOut
    Direction = Direction


sys.modules["audiobusio"] = audiobusio
sys.modules["board"] = board
sys.modules["digitalio"] = digitalio
"""


def _clip(graph) -> np.ndarray:
    """One clip of the model's length: a deterministic mix of tones and noise, int16."""
    n = audio.clip_samples(graph.frontend)
    t = np.arange(n) / graph.frontend["rate"]
    rng = np.random.default_rng(5)
    wave = 6000 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t) + 3000 * np.sin(2 * np.pi * 1210 * t) \
        + rng.normal(0, 800, n)
    return np.clip(np.round(wave), -32768, 32767).astype(np.int16)


def _host_label(graph, clip):
    x = audio.fm.to_input(audio.features(clip[None, :], graph.frontend), graph.frontend["in_mult"],
                          graph.frontend["in_shift"], graph.frontend["in_zero"]).astype(np.int8)
    y = reference.run(graph, x)[0]
    return graph.labels[int(np.argmax(y))]


def _heard(stdout, lit_low=False):
    heard = [ln.split() for ln in stdout.splitlines() if ln.startswith("heard ")]
    leds = [ln.split() for ln in stdout.splitlines() if ln.startswith("led ")]
    assert heard and len(leds) == len(heard), stdout
    label, p = heard[-1][1], float(heard[-1][2].split("=")[1])
    lit = p >= 0.8   # the LED lit for a confident label (the BlackPill's by a low pin)
    assert leds[-1][-1] == ("1" if lit != lit_low else "0"), (heard, leds)
    return label


@pytest.mark.parametrize("board", boards.names())
def test_every_board_folder_has_its_profile_an_example_and_a_readme(board):
    folder = BOARDS / board
    assert boards.load(board)["name"] == board
    example = folder / ("code.py" if board.startswith("circuitpython") else "main.py")
    assert example.is_file(), example
    readme = (folder / "README.md").read_text()
    assert boards.load(board)["title"].split(" (")[0] in readme
    assert "emulation" in readme.lower()   # how it was exercised, said plainly
    if board in VARIANT:
        assert f"models/kws-digits/{VARIANT[board]}.dxb" in example.read_text()


BALLAST = """
import gc
gc.collect()
if gc.mem_free() + gc.mem_alloc() > HEAP:   # the rest of the firmware's heap held, as on a board with HEAP bytes
    ballast = bytearray(gc.mem_free() + gc.mem_alloc() - HEAP)
"""


@pytest.mark.parametrize("board", MICROPHONE_BOARDS)
def test_a_boards_example_hears_what_the_host_hears(board, tmp_path):
    """On the board's own instruction set and 32-bit arithmetic (its profile's qemu_target), with its heap (a
    ballast holds the rest of the target's 192 KB; the RP2350 and H7 have more, and get all 192 KB): main.py
    compiled from its file at boot as on the board, the model found in /rom (the target's memory-mapped ROMFS) and
    read in place."""
    profile = boards.load(board)
    target = profile["qemu_target"]
    if not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    blob = bundled.blob("kws-digits", VARIANT[board])
    graph = blob_reader.read(blob).graph
    clip = _clip(graph)
    slots = (clip.astype(np.int32) << 16) | 0x5A5A   # an I2S microphone's low bits are noise: the example drops them
    files = {"model.dxb": blob.read_bytes(), "mic.bin": slots.astype("<i4").tobytes(),
             "main.py": (BOARDS / board / "main.py").read_bytes()}
    script = f"HEAP = {profile['heap_bytes']}\n" + BALLAST + MACHINE + "import main\n"
    proc = qemu.run_script(target, script, files, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.startswith(f"listening: {graph.name} with the asm backend"), proc.stdout[:300]
    if board == "rp2350":   # its budget keeps the model resident; read in place from /rom it copies nothing anyway
        assert "with the asm backend, 0 bytes from flash per inference" in proc.stdout
    assert _heard(proc.stdout, lit_low=board == "stm32f411") == _host_label(graph, clip)


@pytest.mark.skipif(not CIRCUITPYTHON.is_file(), reason="needs ../shared/targets/circuitpython")
def test_the_circuitpython_example_hears_what_the_host_hears(tmp_path):
    blob = bundled.blob("kws-digits", VARIANT["circuitpython-pico"])
    graph = blob_reader.read(blob).graph
    clip = _clip(graph)
    (tmp_path / "model.dxb").write_bytes(blob.read_bytes())
    pdm = (np.repeat(clip, 2).astype(np.int32) + 32768).astype("<u2")   # 16 kHz unsigned: each pair averages back
    (tmp_path / "mic.bin").write_bytes(pdm.tobytes())
    (tmp_path / "code.py").write_bytes((BOARDS / "circuitpython-pico" / "code.py").read_bytes())
    script = tmp_path / "run.py"
    script.write_text(CIRCUITPY_HW + "import code\n")
    heap = boards.load("circuitpython-pico")["heap_bytes"]
    proc = subprocess.run([str(CIRCUITPYTHON), "-X", f"heapsize={heap}", str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={"MICROPYPATH": f"{emulator.device_path(source=True)}:{tmp_path}", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.startswith(f"listening: {graph.name} with the ulab backend")
    # the ulab front-end is held to a tolerance, not bit-exactness (tests/test_frontend_ulab.py): the label matches
    assert _heard(proc.stdout) == _host_label(graph, clip)
