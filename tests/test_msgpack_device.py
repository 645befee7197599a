"""The device's msgpack subset decoder, run under MicroPython against msgpack-python."""
import math
import struct

import msgpack
import numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck

from helpers import run_mpy

DECODE_EACH = """
import sys, json, struct
from udx.msgpack import unpackb
from udx.errors import FormatError
with open(sys.argv[1], 'rb') as f:
    data = f.read()
pos = 0
while pos < len(data):
    n = struct.unpack_from('<I', data, pos)[0]
    msg = data[pos + 4:pos + 4 + n]
    pos += 4 + n
    try:
        print(json.dumps({"ok": unpackb(msg)}))
    except FormatError as e:
        print(json.dumps({"error": str(e)}))
"""


def decode_on_device(messages, tmp_path):
    path = tmp_path / "msgs.bin"
    path.write_bytes(b"".join(struct.pack("<I", len(m)) + m for m in messages))
    out = run_mpy(DECODE_EACH, tmp_path, heap=256 * 1024, args=[path])
    assert len(out) == len(messages)
    return out


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


scalars = (st.none() | st.booleans() | st.integers(-(2**31), 2**32 - 1) | st.text(max_size=300)
           | st.floats(allow_nan=False, allow_infinity=False, width=32).map(float))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=20) | st.dictionaries(st.text(max_size=10), kids, max_size=20),
                      max_leaves=15)


@given(st.lists(values, min_size=5, max_size=15))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
def test_decodes_what_msgpack_python_encodes(tmp_path, objs):
    packed = [msgpack.packb(o) for o in objs]
    for obj, got in zip(objs, decode_on_device(packed, tmp_path)):
        assert "ok" in got and same(obj, got["ok"]), (obj, got)


def test_limits_and_unsupported_types(tmp_path):
    deep = b"\x91" * 9 + b"\x01"                    # 9 nested arrays: over the depth limit of 8
    cases = {
        deep: "nested deeper than 8",
        b"\xdc\xff\xff\x01": "needs 65535 bytes",    # array16 claiming 65535 elements in 1 byte: no allocation
        b"\xd9\xff" + b"a" * 10: "needs 255 bytes",     # str8 longer than the data
        b"\xcf" + bytes(8): "type byte 0xcf",            # uint64 is not used by .dxb
        b"\xc4\x01a": "type byte 0xc4",                 # bin8 neither
        b"\x81\x01\x02": "not a string",                 # map with an int key
        b"\x01\x02": "1 trailing bytes",
        b"\xa2\xff\xfe": "invalid UTF-8",
        b"": "needs 1 bytes",
    }
    for msg, got in zip(cases, decode_on_device(list(cases), tmp_path)):
        assert "error" in got and cases[msg] in got["error"], (msg, got)


def test_fuzz_never_raises_anything_but_format_error(tmp_path):
    """3,000 random and mutated messages: decoded or FormatError (a crash fails the MicroPython run)."""
    rng = np.random.default_rng(1)
    seed_msgs = [msgpack.packb(o) for o in ({"a": [1, 2.5, "x"], "b": {"c": None}}, [True, -5, 70000, "é"], "s" * 40)]
    msgs = [rng.bytes(int(rng.integers(0, 40))) for _ in range(1500)]
    for _ in range(1500):
        b = bytearray(seed_msgs[rng.integers(len(seed_msgs))])
        for pos in rng.integers(0, len(b), size=int(rng.integers(1, 4))):
            b[pos] = int(rng.integers(0, 256))
        msgs.append(bytes(b[: int(rng.integers(0, len(b) + 1))]))
    out = decode_on_device(msgs, tmp_path)
    assert sum("error" in o for o in out) > 1000   # most of them are invalid, and all came back as FormatError
