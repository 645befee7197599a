# Global average pooling: (H, W, C) -> (C,). int8 as TFLite's mean over the whole map with the same input and output
# quantization: a channel's sum of codes over H*W, rounded half away from zero (the host's microdx.ops.gap). No
# weights, no scratch. The sums stay far inside int32 (at most 128 * 2^20).
from udx import backends
from udx.blob import MAX_DIM, int_field
from udx.conv2d import _ints
from udx.errors import FormatError

try:   # the native twin of GapI8.forward (udx/backends.py)
    from udx import gap_viper
except (ImportError, SyntaxError, ValueError):
    gap_viper = None


class Weightless:
    """The plan of a layer without tensors (pooling): no scratch, nothing in its record to attach."""

    def attach(self, tensors, what):
        pass

    def scratch_bytes(self):
        return 0, 0

    def payload_bytes(self):
        return 0

    def bind(self, scratch_len):
        pass


class GapI8(Weightless):
    """int8 global average pooling; the pure loops below are the reference of udx/gap_viper.py."""

    def __init__(self, entry, what):
        h, w, c = _ints(entry, "in", 3, 1, MAX_DIM, what)
        out = entry.get("out")
        if out != [c] or h > MAX_DIM // w or h * w > MAX_DIM // c:
            raise FormatError("%s: gap maps (H, W, C) to (C,), not %r -> %r" % (what, entry["in"], out))
        self.hw, self.c = h * w, c
        self.macs = h * w * c
        if "zero" in entry:
            int_field(entry, "zero", -128, 127, what)

    def forward(self, f, x, y, scratch, trace):
        n = self.hw
        c = self.c
        fast = backends.twin(gap_viper)
        if fast:
            fast.gap_i8(x, y, n, c)
            if trace:
                trace()
            return
        half = n >> 1
        for ch in range(c):
            s = 0
            for i in range(ch, n * c, c):
                s += x[i]
            y[ch] = (s + half) // n if s >= 0 else -((half - s) // n)
        if trace:
            trace()


class GapF32(GapI8):
    """float32 global average pooling (the mean of each channel)."""

    def forward(self, f, x, y, scratch, trace):
        n = self.hw
        c = self.c
        for ch in range(c):
            s = 0.0
            for i in range(ch, n * c, c):
                s += x[i]
            y[ch] = s / n
        if trace:
            trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
gap_i8 = GapI8
gap_f32 = GapF32
