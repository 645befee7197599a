# A bounded decoder for the msgpack subset that .dxb headers use: nil, bool, int up to 32 bits,
# float32/64, str, array and map (with str keys). Anything else is a FormatError, never a crash:
# every length is checked against the bytes that remain before anything is allocated from it.
import struct

from udx.errors import FormatError

MAX_DEPTH = 8


def unpackb(buf, max_depth=MAX_DEPTH):
    """Decode one msgpack object that fills `buf` (bytes-like) exactly; raise FormatError otherwise."""
    obj, pos = _read(buf, 0, max_depth)
    if pos != len(buf):
        raise FormatError("msgpack: %d trailing bytes after the object" % (len(buf) - pos))
    return obj


def _need(buf, pos, n):
    if n > len(buf) - pos:
        raise FormatError("msgpack: needs %d bytes at offset %d, only %d left" % (n, pos, len(buf) - pos))


def _read(buf, pos, depth):
    _need(buf, pos, 1)
    t = buf[pos]
    pos += 1
    if t < 0x80:
        return t, pos
    if t >= 0xE0:
        return t - 0x100, pos
    if t < 0x90:
        return _read_map(buf, pos, t & 0x0F, depth)
    if t < 0xA0:
        return _read_array(buf, pos, t & 0x0F, depth)
    if t < 0xC0:
        return _read_str(buf, pos, t & 0x1F)
    if t == 0xC0:
        return None, pos
    if t == 0xC2:
        return False, pos
    if t == 0xC3:
        return True, pos
    fmt = _FIXED.get(t)
    if fmt is not None:
        size = struct.calcsize(fmt)
        _need(buf, pos, size)
        return struct.unpack_from(fmt, buf, pos)[0], pos + size
    if t == 0xD9 or t == 0xDA:
        fmt = "<B" if t == 0xD9 else ">H"
        size = 1 if t == 0xD9 else 2
        _need(buf, pos, size)
        return _read_str(buf, pos + size, struct.unpack_from(fmt, buf, pos)[0])
    if t == 0xDC or t == 0xDE:
        _need(buf, pos, 2)
        n = struct.unpack_from(">H", buf, pos)[0]
        if t == 0xDC:
            return _read_array(buf, pos + 2, n, depth)
        return _read_map(buf, pos + 2, n, depth)
    raise FormatError("msgpack: type byte 0x%02x at offset %d is not used by .dxb" % (t, pos - 1))


_FIXED = {
    0xCA: ">f", 0xCB: ">d",
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i",
}


def _read_str(buf, pos, n):
    _need(buf, pos, n)
    try:
        return str(bytes(buf[pos:pos + n]), "utf-8"), pos + n
    except UnicodeError:
        raise FormatError("msgpack: invalid UTF-8 in string at offset %d" % pos)


def _read_array(buf, pos, n, depth):
    if depth <= 0:
        raise FormatError("msgpack: nested deeper than %d" % MAX_DEPTH)
    _need(buf, pos, n)  # every element takes at least one byte
    out = []
    for _ in range(n):
        v, pos = _read(buf, pos, depth - 1)
        out.append(v)
    return out, pos


def _read_map(buf, pos, n, depth):
    if depth <= 0:
        raise FormatError("msgpack: nested deeper than %d" % MAX_DEPTH)
    _need(buf, pos, 2 * n)
    out = {}
    for _ in range(n):
        k, pos = _read(buf, pos, depth - 1)
        if not isinstance(k, str):
            raise FormatError("msgpack: map key at offset %d is not a string" % pos)
        v, pos = _read(buf, pos, depth - 1)
        out[k] = v
    return out, pos
