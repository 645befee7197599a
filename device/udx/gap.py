# Global average pooling: (H, W, C) -> (C,). int8 as TFLite's mean over the whole map with the same input and output
# quantization: a channel's sum of codes over H*W, rounded half away from zero (the host's microdx.ops.gap). No
# weights, no scratch. The sums stay far inside int32 (at most 128 * 2^20).
import array

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
            self.zero = int_field(entry, "zero", -128, 127, what)
        if "mean" in entry:   # TFLite's float32 MEAN (an imported int8 .tflite): microdx.ops.gap.tflite_mean
            v = entry["mean"]
            if entry.get("dtype") != "i8" or not isinstance(v, list) or len(v) != 2 or not (
                    isinstance(v[0], float) and isinstance(v[1], float)):
                raise FormatError("%s: mean must be two floats on an int8 gap layer, not %r" % (what, v))
            self.mean = v
            self.f32 = array.array("f", [0.0])   # rounds each step to float32 where floats are doubles

    mean = None

    def forward(self, f, x, y, scratch, trace):
        n = self.hw
        c = self.c
        if self.mean is not None:
            _tflite_mean(x, y, n, c, self.mean[0], self.mean[1], self.zero, self.f32)
            if trace:
                trace()
            return
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


def _tflite_mean(x, y, n, c, scale, bias, zero, b):
    """TFLite's int8 MEAN of each channel in float32, as its reference kernel: round(float(sum) / n * scale + bias)
    half away from zero, + zero, clamped. b: a 1-float array('f'); storing into it rounds to float32, which makes a
    port with double floats compute exactly what float32 does (one rounding of the exact result per step)."""
    for ch in range(c):
        s = 0
        for i in range(ch, n * c, c):
            s += x[i]
        b[0] = s          # float(sum): rounded to float32 as C's cast is
        b[0] = b[0] / n
        b[0] = b[0] * scale
        b[0] = b[0] + bias
        v = b[0]
        r = int(v)        # toward zero; v - r is exact
        if v - r >= 0.5:
            r += 1
        elif v - r <= -0.5:
            r -= 1
        r += zero
        y[ch] = -128 if r < -128 else (127 if r > 127 else r)


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
