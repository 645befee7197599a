"""`microdx deploy MODEL.dxb --port PORT`: put a model and the runtime it needs on a board over USB, through
mpremote's Python API (its serial transport, in raw REPL without a soft reset, as `mpremote connect PORT resume`).

- the runtime: udx's .mpy files compiled by mpy-cross for the board's architecture (its profile's mpy_march), only the
  kernels the blob uses (microdx.fit.runtime_files); a file whose SHA-256 on the board already matches is skipped;
- the model: written under a temporary name, checked on the board (its length and a SHA-256 computed there), and only
  then renamed over the old one, so an interrupted copy never replaces a good model: the old file stays whole until
  the new one is complete and verified (on filesystems without an atomic rename-over, the old model is moved aside to
  NAME.old for the instant between two renames, and removed after);
- optionally the board's example main.py from boards/<board>/ (--main).

With `romfs=True` (`--romfs`) the runtime and the model go into a ROMFS image instead (MicroPython >= 1.25 on boards
with a ROMFS partition), which udx reads in place: the model's weights are never copied to RAM (udx.inplace). The
image is built here (microdx.romfs: the blob's data 4-byte aligned, the runtime under lib/udx, which is on sys.path
as /rom/lib) and written by `mpremote romfs deploy`; then it is mounted at /rom and every file is checked on the board
(SHA-256). Writing a partition erases it first, so unlike a file copy an interrupted ROMFS deploy leaves no old model:
the check says so and a second deploy completes it; main.py (--main) still goes to the filesystem, which survives.

Every failure is a DeviceError naming the file and what to do; nothing is written on the host.
"""
from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from microdx import boards, emulator, fit, paths
from microdx.errors import DeviceError

CHUNK = 1024   # bytes per raw-REPL write: mpremote's default is 256; larger chunks copy faster over USB


def _transport(port: str):
    from mpremote.transport_serial import SerialTransport

    try:
        t = SerialTransport(port, baudrate=115200)
    except Exception as e:   # mpremote raises its TransportError, serial its SerialException
        raise DeviceError("DeployError", f"cannot open {port}: {e}; is the board plugged in (mpremote devs lists "
                                         f"the ports)?") from None
    try:
        t.enter_raw_repl(soft_reset=False)
    except Exception as e:
        t.close()
        raise DeviceError("DeployError", f"{port} does not answer as a MicroPython REPL ({e}): close other "
                                         f"programs using the port (a serial terminal, Thonny) and retry") from None
    return t


@contextlib.contextmanager
def _session(port: str):
    """The board's transport in raw REPL (_transport), left and closed however the block ends."""
    t = _transport(port)
    try:
        yield t
    finally:
        try:
            t.exit_raw_repl()
        finally:
            t.close()


def _remote_sha256(t, path: str) -> str | None:
    """The file's SHA-256 computed on the board, or None when it does not exist there."""
    if not t.fs_exists(path):
        return None
    try:
        return t.fs_hashfile(path, "sha256").hex()
    except Exception as e:
        raise DeviceError("DeployError", f"the board cannot hash {path} ({e}): its firmware needs hashlib.sha256 "
                                         f"to verify a copy") from None


def _put(t, path: str, data: bytes, progress=None) -> None:
    """Write `data` to `path` on the board: to a temporary name, checked there (length, SHA-256), then renamed."""
    tmp = path + ".new"
    t.fs_writefile(tmp, data, chunk_size=CHUNK, progress_callback=progress)
    size = t.fs_stat(tmp)[6]
    got = _remote_sha256(t, tmp)
    want = hashlib.sha256(data).hexdigest()
    if size != len(data) or got != want:
        t.fs_rmfile(tmp)
        raise DeviceError("DeployError", f"{path}: the board holds {size:,} bytes with SHA-256 {got} after the "
                                         f"copy, not {len(data):,} bytes with {want}: the old file was kept; retry "
                                         f"(a loose cable or a full filesystem)")
    # os.rename over an existing file is atomic on littlefs and VfsPosix; FAT refuses it: move the old one aside
    t.exec(f"import os\ntry:\n os.rename({tmp!r}, {path!r})\nexcept OSError:\n os.rename({path!r}, {path + '.old'!r})"
           f"\n os.rename({tmp!r}, {path!r})\n os.remove({path + '.old'!r})")


def _sync(t, path: str, data: bytes, progress=None) -> bool:
    """Write `data` to `path` on the board (_put) unless the board already holds it byte for byte; True if written."""
    if _remote_sha256(t, path) == hashlib.sha256(data).hexdigest():
        return False
    _put(t, path, data, progress)
    return True


def files(blob_path, board: str, graph=None) -> dict[str, Path]:
    """{path on the board: local file} of udx's .mpy files the blob needs on `board`, compiled for its
    architecture (`graph`: the blob's, when already read)."""
    from microdx import blob_reader

    arch = boards.load(board).get("mpy_march")
    kernels = fit.graph_kernels(graph or blob_reader.read(blob_path).graph)
    local = emulator.compiled_device_dir(arch)
    return {name: local / name for name in fit.runtime_files(kernels, arch)}


def deploy(blob_path, port: str, board: str = "rp2040", name: str | None = None, main: bool = False,
           progress=None, romfs: bool = False) -> dict:
    """Deploy the blob and the runtime it needs to the board on `port` (see the module docstring). `name`: the
    model's file on the board (default the blob's file name). `progress(done, total)`: bytes of the model copied.
    `romfs`: into the board's ROMFS partition instead (the model is then /rom/NAME; progress counts image bytes).
    Returns {"copied": [...], "skipped": [...], "model": name, "model_bytes", "sha256"} (with romfs also
    "image_bytes" and "partition_bytes")."""
    from microdx.pipeline import read_blob

    graph = read_blob(blob_path).graph   # a corrupt or foreign file is refused before anything reaches the board
    data = Path(blob_path).read_bytes()
    name = name or Path(blob_path).name
    runtime = files(blob_path, board, graph)
    example = None
    if main:
        example = paths.repo_dir("boards") / board / "main.py"
        if not example.is_file():
            raise DeviceError("DeployError", f"board {board} has no example main.py (boards/{board}/: CircuitPython "
                                             f"boards run code.py, copied by hand to CIRCUITPY)")
    if romfs:
        return _deploy_romfs(port, board, name, data, runtime, example, progress)
    if example:
        runtime["main.py"] = example
    copied, skipped = [], []
    with _session(port) as t:
        try:
            if not t.fs_exists("udx"):
                t.fs_mkdir("udx")
            for remote, local in sorted(runtime.items()):
                (copied if _sync(t, remote, local.read_bytes()) else skipped).append(remote)
            (copied if _sync(t, name, data, progress) else skipped).append(name)
        except DeviceError:
            raise
        except Exception as e:   # the link dropped, the filesystem filled: what was already renamed is whole
            raise DeviceError("DeployError", f"copy to {port} failed ({type(e).__name__}: {e}); files already "
                                             f"verified stay, an unfinished one is left as NAME.new and never "
                                             f"replaces the old; run deploy again") from None
    return {"port": port, "board": board, "copied": copied, "skipped": skipped, "model": name,
            "model_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _romfs_partition(t, port: str) -> int:
    """Bytes of ROMFS partition 0 on the board, or a DeviceError saying the firmware has none."""
    t.exec("import vfs")
    if not t.eval("hasattr(vfs, 'rom_ioctl')"):
        raise DeviceError("DeployError", f"the firmware on {port} has no ROMFS (vfs.rom_ioctl is missing): use a "
                                         f"MicroPython >= 1.25 build with a ROMFS partition, or deploy without "
                                         f"--romfs (files on the filesystem; the weights are then streamed)")
    if t.eval("vfs.rom_ioctl(1)") < 1:
        raise DeviceError("DeployError", f"the firmware on {port} has ROMFS support but no ROMFS partition")
    return t.eval("len(vfs.rom_ioctl(2, 0))")


def _write_romfs(port: str, image: bytes, progress=None) -> None:
    """Write `image` to the board's ROMFS partition with `mpremote romfs deploy`, reporting progress(done, total)
    from the offsets it prints."""
    import re

    with tempfile.TemporaryDirectory(prefix="microdx-romfs-") as tmp:
        img = Path(tmp) / "model.romfs"   # the suffix tells mpremote it is an image, not a folder to pack
        img.write_bytes(image)
        proc = subprocess.Popen([sys.executable, "-m", "mpremote", "connect", port, "resume", "romfs", "deploy",
                                 str(img)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = ""
        while True:
            chunk = proc.stdout.read(64)
            if not chunk:
                break
            out += chunk
            offsets = re.findall(r"Writing at offset (\d+)", out[-200:])
            if progress and offsets:
                progress(int(offsets[-1]), len(image))
        proc.wait()
    if proc.returncode != 0 or "ROMFS image deployed" not in out:
        tail = out.strip().replace("\r", "\n").splitlines()[-1:] or ["no output"]
        raise DeviceError("DeployError", f"mpremote romfs deploy to {port} failed: {tail[0]}; the partition may "
                                         f"be half written: run deploy --romfs again")


def _deploy_romfs(port: str, board: str, name: str, data: bytes, runtime: dict, example, progress=None) -> dict:
    """The --romfs path of deploy(): build the image, check it fits, write it with mpremote, mount it, verify; then
    the board's example (`example`, a local path or None) to the filesystem."""
    from microdx import romfs

    content = {f"lib/{remote}": local.read_bytes() for remote, local in runtime.items()}
    content[name] = data
    image = romfs.image(content)
    with _session(port) as t:
        size = _romfs_partition(t, port)
    if len(image) > size:
        raise DeviceError("BudgetError", f"the ROMFS image ({len(image):,} bytes: the model and udx's .mpy files) "
                                         f"does not fit the board's ROMFS partition ({size:,} bytes): short by "
                                         f"{len(image) - size:,} bytes; compress the model further or deploy "
                                         f"without --romfs")
    _write_romfs(port, image, progress)
    with _session(port) as t:   # mount what was written and check every file there, as the board will read it
        t.exec("import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass\n"
               "vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), '/rom')")
        for path, want in content.items():
            got = _remote_sha256(t, "/rom/" + path)
            if got != hashlib.sha256(want).hexdigest():
                raise DeviceError("DeployError", f"/rom/{path} on the board does not match the image written "
                                                 f"(SHA-256 {got}): run deploy --romfs again")
        copied = ["main.py"] if example and _sync(t, "main.py", example.read_bytes()) else []
    return {"port": port, "board": board, "copied": sorted(f"/rom/{p}" for p in content) + copied, "skipped": [],
            "model": f"/rom/{name}", "model_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "image_bytes": len(image), "partition_bytes": size}
