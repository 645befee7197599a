# Residual addition: y = x + skip, elementwise, skip being an earlier layer's output (entry "skip": its index, -1 for
# the model input) that the scheduler (udx.model) copies into its skip buffer after that layer ran; udx.plan counts
# the buffer and allows one live skip at a time. int8: TFLite's ADD, exactly (the host's microdx.ops.add): both
# inputs minus their zero points, shifted left 20, rescaled by their Q31 multipliers, summed, rescaled to the output
# (udx/tflq.py's double rounding each time), plus its zero point, clamped. The q tensor (the three multiplier and
# shift pairs, 24 bytes) is read into the scratch, or kept resident by the layer cache. The pure loop is the reference
# of udx/add_viper.py.
from udx import backends
from udx.act import _count
from udx.blob import int_field, read_exact
from udx.dense import _tensor, requant_fields
from udx.gap import Weightless

try:   # the native twin of the int8 loop (udx/backends.py)
    from udx import add_viper
except (ImportError, SyntaxError, ValueError):
    add_viper = None


class AddF32(Weightless):
    """float32 x + skip, then ReLU if fused."""

    macs = 0
    skip_buf = None   # the scheduler's skip buffer, bound at open
    hi = 127

    def __init__(self, entry, what):
        self.n = _count(entry, what)
        self.skip = int_field(entry, "skip", -1, 0x7FFF, what)   # udx.plan checks it against the layer table
        self.relu = entry.get("act") == "relu"

    def forward(self, f, x, y, scratch, trace):
        s = self.skip_buf
        relu = self.relu
        for i in range(self.n):
            v = x[i] + s[i]
            y[i] = 0.0 if relu and v < 0.0 else v
        if trace:
            trace()


class AddI8(AddF32):
    """int8 TFLite ADD of x and the skip buffer."""

    buf = None       # its own buffer when the layer cache keeps q resident
    loaded = False

    def __init__(self, entry, what):
        AddF32.__init__(self, entry, what)
        requant_fields(self, entry, what)
        self.za = int_field(entry, "za", -128, 127, what)
        self.zb = int_field(entry, "zb", -128, 127, what)

    def attach(self, tensors, what):
        self.q = _tensor(tensors, "q", "u32", [3, 2], what)

    def scratch_bytes(self):
        return 24, 24

    def payload_bytes(self):
        return 24

    def views(self, scratch):
        self.view = memoryview(scratch)[:24]

    def forward(self, f, x, y, scratch, trace):
        q = self.buf if self.buf is not None else scratch
        if not self.loaded:
            f.seek(self.q)
            read_exact(f, self.view, "add multipliers")
        self.loaded = self.buf is not None
        fast = backends.twin(add_viper)
        (fast.add_tile if fast else add_tile)(q, self.skip_buf, x, y, self.n, self.za, self.zb, self.zero, self.lo,
                                          self.hi)
        if trace:
            trace()


def add_tile(q, a, b, y, n, za, zb, zero, lo, hi):
    """The reference int8 add: y[i] from a (the skip) and b (x), with the (multiplier, shift) pairs of a, b and the
    output at q[0:24] (u32 pairs, little-endian)."""
    from udx.tflq import requant
    ma0, ma1, sa = q[0] | (q[1] << 8), q[2] | (q[3] << 8), (q[4] ^ 0x80) - 0x80
    mb0, mb1, sb = q[8] | (q[9] << 8), q[10] | (q[11] << 8), (q[12] ^ 0x80) - 0x80
    mo0, mo1, so = q[16] | (q[17] << 8), q[18] | (q[19] << 8), (q[20] ^ 0x80) - 0x80
    for i in range(n):
        v = requant(requant((a[i] - za) << 20, ma0, ma1, sa, 0) + requant((b[i] - zb) << 20, mb0, mb1, sb, 0),
                    mo0, mo1, so, 0) + zero
        y[i] = lo if v < lo else (hi if v > hi else v)


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
add_i8 = AddI8
add_f32 = AddF32
