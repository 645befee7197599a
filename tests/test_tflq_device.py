"""TFLite's requantization on the device (udx/tflq.py and its viper twin), the arithmetic imported .tflite layers
will run: the same integers as the host's fixedpoint.tflite_requantize for both roundings, on random accumulators,
rounding halves, left shifts and the int32 extremes, on the unix port, qemu-m3 (31-bit small ints, 32-bit viper
ints) and qemu-m0 (the RP2040's armv6m); and on qemu-m3 the pure version allocates nothing (14-bit limbs keep every
product and column sum inside the small ints)."""
import struct

import numpy as np
import pytest

from microdx import qemu
from microdx.fixedpoint import tflite_requantize
from helpers import run_on_target

SCRIPT = '''
import gc, struct, binascii
from udx import tflq
try:
    from udx import tflq_viper
except (ImportError, SyntaxError, ValueError):
    tflq_viper = None
f = open("cases.bin", "rb")
n = struct.unpack("<I", f.read(4))[0]
cases = [struct.unpack("<iHHbb", f.read(10)) for i in range(n)]
for name, mod in (("python", tflq), ("viper", tflq_viper)):
    if mod:
        out = bytearray()
        for a, lo, hi, s, g in cases:
            out += struct.pack("<i", mod.requant(a, lo, hi, s, g))
        print(name, binascii.hexlify(out).decode())
r = tflq.requant
gc.collect()
gc.disable()
before = gc.mem_alloc()
for i in range(200):
    r(-123456 + i, 0x9E9A, 0x5A82, -9, i & 1)   # m = 0x5A829E9A (about 0.707 in Q31)
print("alloc", gc.mem_alloc() - before)
gc.enable()
'''


def _cases():
    rng = np.random.default_rng(3)
    n = 400
    acc = rng.integers(-2**31, 2**31, size=n)
    acc[:6] = [-2**31, 2**31 - 1, 0, -1, 1, -3]
    acc[6:150] = rng.integers(-2**16, 2**16, size=144)      # accumulators of real layers
    mult = rng.integers(2**30, 2**31, size=n)
    mult[:3] = [2**31 - 1, 2**30, 0]
    mult[6:80] = 2**30                                       # 0.5: every odd product is a rounding half
    shift = rng.integers(-31, 1, size=n)
    shift[150:170] = rng.integers(1, 3, size=20)             # left shifts (multipliers above 1)
    acc[150:170] //= 16
    single = rng.integers(0, 2, size=n)
    want = np.array([tflite_requantize(a, m, s, bool(g)).item() for a, m, s, g in zip(acc, mult, shift, single)])
    data = struct.pack("<I", n) + b"".join(struct.pack("<iHHbb", int(a), int(m) & 0xFFFF, int(m) >> 16, int(s), int(g))
                                           for a, m, s, g in zip(acc, mult, shift, single))
    return data, want


@pytest.mark.parametrize("target", ["unix", "qemu-m3", "qemu-m0"])
def test_device_tflite_requantization_equals_the_host(tmp_path, target):
    if target != "unix" and not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    data, want = _cases()
    stdout = run_on_target(target, tmp_path, SCRIPT, {"cases.bin": data}, timeout=600)
    lines = dict(ln.split(maxsplit=1) for ln in stdout.splitlines() if ln.split()[:1] in (["python"], ["viper"],
                                                                                            ["alloc"]))
    assert set(lines) == {"python", "viper", "alloc"}
    for name in ("python", "viper"):
        np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(lines[name]), "<i4"), want, err_msg=name)
    if target == "qemu-m3":
        assert int(lines["alloc"]) == 0   # small ints only: no long int on a 32-bit MCU
