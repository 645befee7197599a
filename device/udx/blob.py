# Reads and checks the parts of a .dxb file: preamble, header, layer records.
# Every size read from the file is checked against the file size (and a fixed cap) before it is
# used to allocate or seek, so a corrupt or hostile blob raises a FormatError instead of a MemoryError.
import struct
import binascii

from udx.errors import FormatError, TruncatedError, ChecksumError, VersionError
from udx.msgpack import unpackb

MAGIC = b"uDXB"
MAJOR = 1
MINOR = 0
PREAMBLE = "<4sBBHII"   # magic, major, minor, flags, header length, header CRC32
PREAMBLE_SIZE = 16
RECORD_PREFIX = "<II"   # record meta length, meta CRC32
MAX_HEADER = 32768      # bytes; a header is a few hundred bytes per layer
MAX_META = 4096         # bytes of one record's msgpack meta
MAX_DIM = 1 << 20       # elements in one tensor dimension
CHUNK = 256             # bytes read at a time while checking CRCs of a float model (an int8 one uses its scratch)

DTYPE_SIZE = {"u8": 1, "i8": 1, "u16": 2, "i16": 2, "i32": 4, "u32": 4, "f16": 2, "f32": 4}


def file_size(f):
    """Size of the open file in bytes; leaves the position at 0."""
    n = f.seek(0, 2)
    f.seek(0)
    return n


def read_exact(f, buf, what, nbytes=-1):
    """readinto `buf` fully (`nbytes` bytes; default len(buf), right for byte buffers) or raise TruncatedError."""
    if nbytes < 0:
        nbytes = len(buf)
    n = f.readinto(buf)
    if n is None or n != nbytes:
        raise TruncatedError("file ends inside %s (got %d of %d bytes)" % (what, n or 0, nbytes))


def read_header(f, size):
    """Check the preamble and return the decoded header map."""
    if size < PREAMBLE_SIZE:
        raise TruncatedError("file is %d bytes, shorter than the %d-byte preamble" % (size, PREAMBLE_SIZE))
    pre = bytearray(PREAMBLE_SIZE)
    f.seek(0)
    read_exact(f, pre, "preamble")
    magic, major, minor, flags, hlen, hcrc = struct.unpack(PREAMBLE, pre)
    if magic != MAGIC:
        raise FormatError("not a .dxb blob: magic is %r, expected %r" % (bytes(magic), MAGIC))
    if major != MAJOR:
        raise VersionError("blob format %d.%d; this runtime reads format %d.x only (update udx or re-convert)"
                           % (major, minor, MAJOR))
    if hlen > size - PREAMBLE_SIZE:
        raise TruncatedError("header claims %d bytes but the file has %d after the preamble"
                             % (hlen, size - PREAMBLE_SIZE))
    if hlen > MAX_HEADER:
        raise FormatError("header claims %d bytes, more than the %d-byte limit" % (hlen, MAX_HEADER))
    raw = bytearray(hlen)
    read_exact(f, raw, "header")
    if binascii.crc32(raw) & 0xFFFFFFFF != hcrc:
        raise ChecksumError("header CRC32 mismatch: the file is corrupt")
    header = unpackb(raw)
    if not isinstance(header, dict):
        raise FormatError("header is not a map")
    return header


def field(d, key, kind, what):
    """d[key] checked to be of type `kind`; FormatError names `what` otherwise."""
    v = d.get(key) if isinstance(d, dict) else None
    if not isinstance(v, kind):
        raise FormatError("%s: field %r missing or not %s" % (what, key, kind.__name__))
    return v


def int_field(d, key, lo, hi, what):
    v = field(d, key, int, what)
    if v < lo or v > hi:
        raise FormatError("%s: %s=%d outside [%d, %d]" % (what, key, v, lo, hi))
    return v


def shape_field(d, key, what):
    """A non-empty list of positive dims; returns (shape, element count)."""
    shape = field(d, key, list, what)
    if not shape or len(shape) > 4:
        raise FormatError("%s: %s must have 1 to 4 dims" % (what, key))
    n = 1
    for dim in shape:
        if not isinstance(dim, int) or dim < 1 or dim > MAX_DIM:
            raise FormatError("%s: %s has bad dim %r" % (what, key, dim))
        n *= dim
    return shape, n


def read_record(f, size, entry, what):
    """Read one layer record's meta; return {tensor name: (absolute offset, bytes, dtype, shape, crc)}."""
    off = entry["off"]    # checked against the file size by Model before any record is read
    rlen = entry["len"]
    prefix = bytearray(8)
    f.seek(off)
    read_exact(f, prefix, what + " record prefix")
    mlen, mcrc = struct.unpack(RECORD_PREFIX, prefix)
    if mlen > rlen - 8 or mlen > MAX_META:
        raise FormatError("%s: record meta claims %d bytes (record %d, limit %d)" % (what, mlen, rlen, MAX_META))
    raw = bytearray(mlen)
    read_exact(f, raw, what + " record meta")
    if binascii.crc32(raw) & 0xFFFFFFFF != mcrc:
        raise ChecksumError("%s: record meta CRC32 mismatch: the file is corrupt" % what)
    meta = unpackb(raw)
    tensors = {}
    for t in field(meta, "tensors", list, what):
        name = field(t, "name", str, what)
        tw = what + " tensor " + name
        dtype = field(t, "dtype", str, tw)
        if dtype not in DTYPE_SIZE:
            raise FormatError("%s: unknown dtype %r" % (tw, dtype))
        shape, n = shape_field(t, "shape", tw)
        toff = int_field(t, "off", 8 + mlen, rlen, tw)
        tlen = int_field(t, "len", 0, rlen - toff, tw)
        if toff & 3:
            raise FormatError("%s: payload offset %d is not 4-byte aligned" % (tw, toff))
        if tlen != n * DTYPE_SIZE[dtype]:
            raise FormatError("%s: %d bytes but shape %r of %s needs %d" % (tw, tlen, shape, dtype, n * DTYPE_SIZE[dtype]))
        crc = field(t, "crc", int, tw)
        tensors[name] = (off + toff, tlen, dtype, shape, crc)
    return tensors


def check_payload(f, off, nbytes, crc, what, buf):
    """Stream a payload through the bytearray `buf` (the model's scratch: few, large reads) and compare its CRC32.
    Allocates one view, for the last partial chunk, whatever the payload's size."""
    size = len(buf)
    f.seek(off)
    c = 0
    left = nbytes
    while left >= size:
        read_exact(f, buf, what)
        c = binascii.crc32(buf, c)
        left -= size
    if left:
        tail = memoryview(buf)[:left]
        read_exact(f, tail, what)
        c = binascii.crc32(tail, c)
    if c & 0xFFFFFFFF != crc:
        raise ChecksumError("%s: payload CRC32 mismatch: the file is corrupt (re-copy the blob)" % what)
