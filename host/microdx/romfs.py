"""MicroPython ROMFS images in which blobs are aligned, so that udx can use their weights in place.

A file in a ROMFS image (MicroPython >= 1.25, mounted at /rom) is memory-mapped: udx reads a blob's weights where
they are instead of streaming them into RAM (udx.inplace). Its kernels read int16 and int32 tensors as halfwords
and words, which a Cortex-M0+ (RP2040) faults on unless they are aligned, so udx uses a blob in place only when its
data starts on a 4-byte boundary (the blob aligns its tensors inside). mpremote's builder (`mpremote romfs build`,
mpremote.romfs) places each file's data at whatever byte the records before it end on; `image` here builds with the
same writer and puts a padding record (the format's own kind 1, which readers skip) before each file as needed.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from mpremote.romfs import VfsRomWriter, make_romfs

ALIGN = 4   # bytes: what udx.inplace.aligned checks


def _verbatim_header(name: str, data: bytes) -> bytes:
    """The bytes of a file record from its name up to its data: name, DATA_VERBATIM kind, data length."""
    w = VfsRomWriter()
    return name.encode("ascii") + w._encode_uint(VfsRomWriter.ROMFS_RECORD_KIND_DATA_VERBATIM) + \
        w._encode_uint(len(data))


def data_offset(image: bytes, name: str, data: bytes) -> int:
    """Where the data of file `name` (its base name) with contents `data` starts in `image`, in bytes."""
    head = _verbatim_header(name, data)
    at = image.find(head + data[:64])
    if at < 0:
        raise ValueError(f"{name} is not in the image")
    return at + len(head)


def _build(files: dict[str, bytes], pads: dict[str, int]) -> bytes:
    """The image of `files` ({path: bytes}, folders by '/'), with a padding record of pads[path] bytes of payload
    before the file record of each path in `pads`, and one of pads[""] bytes at the end of the top folder."""
    w = VfsRomWriter()
    tree: dict = {}
    for path in files:
        node = tree
        *dirs, base = path.split("/")
        for d in dirs:
            node = node.setdefault(d + "/", {})
        node[base] = path

    def pad(k):
        if k is not None:
            w._extend(w._pack(VfsRomWriter.ROMFS_RECORD_KIND_PADDING, bytes(k)))

    def emit(node):
        for key in sorted(node):
            if key.endswith("/"):
                w.opendir(key[:-1])
                emit(node[key])
                w.closedir()
            else:
                pad(pads.get(node[key]))
                w.mkfile(key, files[node[key]])

    emit(tree)
    pad(pads.get(""))
    return w.finalise()


def image(files: dict[str, bytes], aligned=(".dxb",)) -> bytes:
    """A ROMFS image holding `files` ({path inside the image: bytes}), with the data of every file whose name ends
    with one of `aligned` at a multiple of ALIGN bytes from the image's start (partitions start aligned).

    The writer keeps an image's length even (a spare byte in its length prefix when it would be odd), so padding
    of odd length would move every file by one byte: a 3-byte padding record at the end of the image keeps the
    padding's total even. Then a padding record (2 + k bytes, k = 0..3) before a file moves it and what follows by
    2 to 5 bytes, which reaches every residue modulo 4."""
    targets = sorted(p for p in files if p.endswith(tuple(aligned)))

    def off(img, p):
        return data_offset(img, p.rsplit("/", 1)[-1], files[p])

    def with_end(pads):
        pads = {q: k for q, k in pads.items() if q and k is not None}
        if sum(2 + k for k in pads.values()) % 2:
            pads[""] = 1
        return pads

    pads: dict[str, int] = {}
    for _ in range(3):   # a later pad can lengthen a folder's length prefix and move earlier files: go round again
        for p in targets:
            for k in (pads.get(p), None, 0, 1, 2, 3):
                trial = with_end({**pads, p: k})
                if off(_build(files, trial), p) % ALIGN == 0:
                    pads = trial
                    break
        img = _build(files, pads)
        if all(off(img, p) % ALIGN == 0 for p in targets):
            return img
    raise RuntimeError("ROMFS alignment did not settle")   # not seen


def pad_folder(folder, suffix: str = ".dxb") -> None:
    """Add, before each file of `folder` ending with `suffix`, a small file sorting just before it ("x.dxb" gets
    "x.dxa"), sized so that mpremote's builder (make_romfs, with which QEMU targets pack a folder) puts the blob's
    data on a multiple of ALIGN bytes; and one file sorting last ("~pad") that keeps the padding's total length even
    (see image()). For images this module does not build itself."""
    folder = Path(folder)
    blobs = sorted(folder.rglob("*" + suffix))
    pads = {blob: blob.with_name(blob.name[:-1] + chr(ord(blob.name[-1]) - 1)) for blob in blobs}
    end = folder / "~pad"
    sizes = {blob: 0 for blob in blobs}

    def write():
        for blob, pad in pads.items():
            pad.write_bytes(bytes(sizes[blob]))
        end.write_bytes(bytes(sum(sizes.values()) % 2))

    def aligned(blob):
        return data_offset(_folder_image(folder), blob.name, blob.read_bytes()) % ALIGN == 0

    for _ in range(3):   # a later pad can lengthen a folder's length prefix and move earlier files: go round again
        for blob in blobs:
            for k in range(ALIGN):
                sizes[blob] = k
                write()
                if aligned(blob):
                    break
        if all(aligned(blob) for blob in blobs):
            return
    raise RuntimeError(f"could not align the blobs of {folder} in a ROMFS image")   # not seen


def _folder_image(folder: Path) -> bytes:
    with contextlib.redirect_stdout(io.StringIO()):   # it prints the tree it packs
        return make_romfs(str(folder), mpy_cross=False)
