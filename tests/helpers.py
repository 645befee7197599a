"""Helpers shared by the tests: random models, blobs, and running MicroPython snippets."""
from __future__ import annotations

import json
import struct
import zlib

import msgpack

from microdx import blob_writer, emulator
from microdx.blob_format import PREAMBLE, PREAMBLE_SIZE, align


def write_blob(path, graph):
    blob_writer.write(graph, path)
    return path


def rewrite_header(data: bytes, mutate) -> bytes:
    """Blob bytes with its header map changed by `mutate(header)`, CRC and record offsets kept consistent."""
    _, major, minor, flags, hlen, _ = struct.unpack_from(PREAMBLE, data)
    header = msgpack.unpackb(data[PREAMBLE_SIZE:PREAMBLE_SIZE + hlen])
    old_start = align(PREAMBLE_SIZE + hlen)
    mutate(header)
    for _ in range(4):   # offsets change the header length, which changes the offsets
        raw = msgpack.packb(header)
        delta = align(PREAMBLE_SIZE + len(raw)) - old_start
        for e in header["layers"]:
            e["off"] = e.setdefault("_off0", e["off"]) + delta
        clean = {**header, "layers": [{k: v for k, v in e.items() if k != "_off0"} for e in header["layers"]]}
        raw = msgpack.packb(clean)
        if align(PREAMBLE_SIZE + len(raw)) - old_start == delta:
            break
    pre = struct.pack(PREAMBLE, b"uDXB", major, minor, flags, len(raw), zlib.crc32(raw) & 0xFFFFFFFF)
    body = pre + raw
    return body + bytes(align(len(body)) - len(body)) + data[old_start:]


def run_mpy(code: str, tmp_path, heap: int = 1 << 20, args=()):
    """Run MicroPython `code` (udx importable) and return its stdout lines parsed as JSON where possible."""
    script = tmp_path / "snippet.py"
    script.write_text(code)
    proc = emulator.run_script(script, args, heap=heap)
    if proc.returncode != 0:
        raise AssertionError(f"micropython failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out = []
    for line in proc.stdout.split("\n")[:-1]:   # not splitlines(): it also splits on U+0085 inside strings
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)
    return out


# MicroPython snippet: open each blob listed in the file argv[1] and print the error class and message.
OPEN_EACH = """
import sys, json
import udx
with open(sys.argv[1]) as listing:
    for line in listing:
        path = line.strip()
        try:
            m = udx.Model(path)
            m.close()
            print(json.dumps({"ok": path}))
        except udx.UdxError as e:
            print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


def open_each(paths, tmp_path, heap):
    """Open every blob in `paths` with udx.Model under MicroPython; one result dict per path."""
    listing = tmp_path / "blobs.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    return run_mpy(OPEN_EACH, tmp_path, heap=heap, args=[listing])


def run_on_target(target: str, tmp_path, script: str, files: dict, timeout: float = 1200) -> str:
    """Run MicroPython `script` on `target` ("unix", "qemu-m3", "qemu-m0", ...) with udx compiled for it and `files`
    ({name: bytes}) beside it in the flash folder; the script's stdout (AssertionError on a non-zero exit)."""
    import shutil
    import subprocess

    from microdx import qemu

    if target == "unix":
        d = tmp_path / "flash"
        shutil.copytree(emulator.compiled_device_dir(None) / "udx", d / "udx")
        for name, data in files.items():
            (d / name).write_bytes(data)
        (tmp_path / "s.py").write_text(script)
        proc = subprocess.run([emulator.micropython(), str(tmp_path / "s.py")], cwd=d, env={"MICROPYPATH": str(d)},
                              capture_output=True, text=True, timeout=timeout)
    else:
        proc = qemu.run_script(target, script, files, timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# A ROMFS partition for the unix port, which has vfs.VfsRom but not vfs.rom_ioctl: the ioctl as MicroPython's
# extmod/vfs_rom_ioctl.c defines it (1: partitions; 2, id: the partition's memory; 3, id, nbytes: erase, returns the
# smallest write; 4, id, offset, buf: write; 5, id: writing done; 6, id: erase block size), over a bytearray, put in
# sys.modules["vfs"] (the built-in module cannot take new attributes) so that `import vfs` there finds it.
# mpremote's romfs query/deploy then work unchanged. Writes outside the partition raise, as on a board.
ROMFS_BOARD = """
import sys
import vfs as _vfs


class _Vfs:
    VfsRom = _vfs.VfsRom
    mount = _vfs.mount
    umount = _vfs.umount
    part = bytearray(b"\\xff" * %d)

    @staticmethod
    def rom_ioctl(op, *args):
        p = _Vfs.part
        if op == 1:
            return 1
        if args and args[0] != 0:
            return -19   # ENODEV: one partition
        if op == 2:
            return memoryview(p)
        if op == 3:
            start, n = (0, args[1]) if len(args) == 2 else (args[1], args[2])
            if start + n > len(p):
                return -22
            p[start:start + n] = b"\\xff" * n
            return 4
        if op == 4:
            off, buf = args[1], args[2]
            if off + len(buf) > len(p):
                return -22
            p[off:off + len(buf)] = buf
            return 0
        if op in (5, 6):
            return 0
        return -22


sys.modules["vfs"] = _Vfs
"""


class PtyBoard:
    """The MicroPython unix port behind a pseudo-terminal, as a USB board looks to mpremote: `port` is a /dev/pts
    path; the board's filesystem is `folder` (the interpreter's working directory). Bytes are relayed between two
    pty pairs (what socat does), one the interpreter's terminal, the other mpremote's. A soft reset would end the
    unix port, so tools connect with `resume` (mpremote's raw REPL without a reset)."""

    def __init__(self, folder, heap: int = 1 << 20, romfs_bytes: int = 0):
        """romfs_bytes: give the board a ROMFS partition of that size (ROMFS_BOARD), as MicroPython >= 1.25 has on
        some ports; the unix port has vfs.VfsRom but no partition."""
        import os
        import pty
        import subprocess
        import threading
        import tty

        self.folder = folder
        self._board, board_end = pty.openpty()
        self._host, host_end = pty.openpty()
        for fd in (board_end, host_end):
            tty.setraw(fd)
        self.port = os.ttyname(host_end)
        self._keep = host_end   # open, so the host side's pty stays alive between mpremote connections
        args = []
        if romfs_bytes:   # run before the REPL starts (-i): the partition lives on in the session's sys.modules
            (folder / "romfs_board.py").write_text(ROMFS_BOARD % romfs_bytes)
            args = ["-i", "romfs_board.py"]
        self.proc = subprocess.Popen([emulator.micropython(), "-X", f"heapsize={heap}", *args], stdin=board_end,
                                     stdout=board_end, stderr=board_end, cwd=folder, start_new_session=True,
                                     env={"MICROPYPATH": ".frozen:."})
        os.close(board_end)
        self._stop = False
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def _relay(self):
        import os
        import select

        while not self._stop and self.proc.poll() is None:
            ready, _, _ = select.select([self._board, self._host], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                os.write(self._host if fd == self._board else self._board, data)

    def close(self):
        import os

        self._stop = True
        self.proc.kill()
        self.proc.wait()
        self._thread.join()
        for fd in (self._board, self._host, self._keep):
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
