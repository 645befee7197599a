"""Run udx on MicroPython for an emulated Cortex-M (../shared/targets/qemu-m3, -m0, -m33) and count instructions.

QEMU runs with -icount shift=0: one instruction per virtual nanosecond, so time.ticks_us() differences x 1000 are
instruction counts, the same on every run (../shared/targets/README.md). qemu-m0 executes the RP2040's instruction
set (armv6m), qemu-m33 the RP2350's core.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from microdx import emulator, romfs
from microdx.errors import DeviceError, MicrodxError
from microdx.paths import ROOT

TARGETS = ROOT.parent / "shared" / "targets"
# mpy-cross -march of each target's native code: the M0 is armv6m like the RP2040, the M33 runs armv7emsp code
ARCH = {"qemu-m3": "armv7m", "qemu-m0": "armv6m", "qemu-m33": "armv7emsp"}

# HEAP: the heap left to everything (the interpreter's own allocations, this script and udx included), in bytes:
# a ballast takes the rest of the firmware's 192 KB, so a model runs as in a board whose heap is HEAP
SCRIPT = """
import gc
gc.collect()
if HEAP:
    ballast = bytearray(gc.mem_free() + gc.mem_alloc() - HEAP)
    gc.collect()
    base = len(ballast)
else:
    base = 0
import sys
sys.path.insert(0, FOLDER)
PEAK = [0]
def sample():   # after the open and after every tile of the first inference (Model.trace), as the unix runner does
    gc.collect()
    used = gc.mem_alloc() - base
    if used > PEAK[0]:
        PEAK[0] = used
import array, binascii, time, udx
if BACKEND:
    udx.use_backend(BACKEND)
m = udx.Model(MODEL_FOLDER + "/model.dxb", BUDGET)
sample()
if SAMPLES:   # audio: read and pushed 256 samples at a time, as a microphone's DMA buffer delivers it
    from udx import frontend
    st = frontend.stream(m)
    x = array.array("h", bytes(512))
    xv = memoryview(x)
else:
    x = array.array("b", bytes(m.n_in))
f = open("/flash/in.bin", "rb")
total = 0
for i in range(COUNT):
    if SAMPLES:
        st.reset()
        left = SAMPLES
        while left:
            k = 256 if left > 256 else left
            f.readinto(xv[:k])
            t0 = time.ticks_us()
            st.push(x, k)
            total += time.ticks_diff(time.ticks_us(), t0)
            left -= k
        t0 = time.ticks_us()
        y = frontend.predict(m, st)
    else:
        f.readinto(x)
        if PEAK_RUN and i == 0:   # untimed: the trace costs instructions
            m.trace = sample
            m.predict(x)
            m.trace = None
        t0 = time.ticks_us()
        y = m.predict(x)
    total += time.ticks_diff(time.ticks_us(), t0)
    print("out", binascii.hexlify(bytes(y)).decode())
f.close()
gc.collect()
print("instructions", total * 1000, m.macs, udx.backend(), gc.mem_alloc() - base, PEAK[0],
      -1 if m.in_place is None else m.in_place)
"""


def available(target: str = "qemu-m3") -> bool:
    """Whether ../shared/targets/<target>/run and qemu-system-arm are here."""
    return (TARGETS / target / "run").is_file() and shutil.which("qemu-system-arm") is not None


def run_script(target: str, script: str, files: dict[str, bytes], timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run MicroPython `script` on `target` with udx compiled for its architecture and `files` ({name: bytes}) in
    its /flash folder (the working folder), which the target also packs as its memory-mapped /rom: each .dxb file
    there gets its data 4-byte aligned (microdx.romfs.pad_folder), as `microdx deploy --romfs` builds images, so
    that udx can use it in place; the finished process (stdout, stderr, returncode)."""
    if not available(target):
        raise MicrodxError(f"{target} needs {TARGETS / target / 'run'} and qemu-system-arm (apt-get install)")
    with tempfile.TemporaryDirectory(prefix="microdx-qemu-") as tmp:
        flash = Path(tmp) / "flash"
        shutil.copytree(emulator.compiled_device_dir(ARCH[target]) / "udx", flash / "udx")
        for name, data in files.items():
            (flash / name).write_bytes(data)
        romfs.pad_folder(flash)
        path = Path(tmp) / "script.py"
        path.write_text(script)
        return subprocess.run([str(TARGETS / target / "run"), str(flash), str(path)], capture_output=True,
                              text=True, timeout=timeout)


def run(blob_path, x: np.ndarray, target: str = "qemu-m3", budget: int | None = None,
        backend: str | None = None, heap: int | None = None, rom: bool = False, blob_rom: bool | None = None,
        peak: bool = False) -> dict:
    """int8 outputs (N, outputs) of the blob for int8 inputs `x` (N, inputs), or for int16 audio clips `x` (N,
    samples) through the blob's front-end (udx.frontend, pushed 256 samples at a time; the count then includes it),
    instructions per inference and per MAC, and the kernel backend that ran (udx's own choice unless `backend` is given). `heap` (bytes): run as on a
    board with that much heap in all (a ballast holds the rest); heap_used_bytes: what is allocated at the end,
    interpreter and udx included. A MemoryError raises DeviceError("MemoryError", ...). `rom`: import udx and read
    the blob from /rom, the target's memory-mapped ROMFS (.mpy code executes in place there instead of being loaded
    into the heap, as on boards with a ROMFS partition). `blob_rom` (default: as `rom`): open the blob from /rom, so
    that udx uses its weights in place (in_place_layers says how many layers ran so), or from /flash (streamed:
    in_place_layers None).
    `peak`: also sample the heap after the open and after every tile of an untimed first inference of the first
    input (peak_heap_bytes: the heap in use besides the ballast, interpreter and udx included, as heap_used_bytes;
    0 without it). Audio inputs are not sampled."""
    blob_rom = rom if blob_rom is None else blob_rom
    samples = x.shape[1] if x.dtype == np.int16 else 0
    proc = run_script(target, f"BUDGET = {budget!r}\nCOUNT = {len(x)}\nBACKEND = {backend!r}\nHEAP = {heap!r}\n"
                      f"SAMPLES = {samples}\n"
                      f"FOLDER = {'/rom' if rom else '/flash'!r}\nMODEL_FOLDER = {'/rom' if blob_rom else '/flash'!r}\n"
                      f"PEAK_RUN = {bool(peak)}\n"
                      + SCRIPT,
                      {"model.dxb": Path(blob_path).read_bytes(),
                       "in.bin": np.ascontiguousarray(x, dtype=np.int16 if samples else np.int8).tobytes()})
    lines = [ln.split() for ln in proc.stdout.splitlines() if ln.strip()]
    done = [ln for ln in lines if ln[0] == "instructions"]
    if proc.returncode != 0 or not done:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        kind = "MemoryError" if "MemoryError" in tail[0] else "QemuError"
        raise DeviceError(kind, f"{target}{f' with a {heap:,}-byte heap' if heap else ''} failed: {tail[0]}")
    outputs = np.frombuffer(b"".join(bytes.fromhex(ln[1]) for ln in lines if ln[0] == "out"), np.int8)
    instructions, macs = int(done[0][1]), int(done[0][2])
    return {"outputs": outputs.reshape(len(x), -1), "instructions_per_inference": instructions // max(len(x), 1),
            "instructions_per_mac": round(instructions / max(len(x), 1) / max(macs, 1), 1), "target": target,
            "backend": done[0][3], "heap_used_bytes": int(done[0][4]), "peak_heap_bytes": int(done[0][5]),
            "in_place_layers": None if done[0][6] == "-1" else int(done[0][6])}
