# 2-D average and max pooling on HWC activations, as TFLite defines them (host: microdx.ops.pool): padded cells take
# no part (the average divides by the window's real cells), int8 codes are pooled directly (quantization passes
# through), the average is rounded half away from zero, a fused ReLU clamps at the zero point. No weights, no
# scratch. The pure loops in pool_tile are the reference of udx/pool_viper.py.
from udx import backends
from udx.blob import int_field
from udx.conv2d import _geometry
from udx.dense import _act
from udx.errors import FormatError
from udx.gap import Weightless

try:   # the native twin of pool_tile (udx/backends.py)
    from udx import pool_viper
except (ImportError, SyntaxError, ValueError):
    pool_viper = None


class AvgPool2dI8(Weightless):
    """int8 average pooling; MaxPool2dI8 shares everything but `is_max`."""

    is_max = 0

    def __init__(self, entry, what):
        _geometry(self, entry, what)
        if self.m != self.geo[2]:
            raise FormatError("%s: pooling keeps the channels, not %d -> %d" % (what, self.geo[2], self.m))
        ho, wo, kh, kw = self.geo[3], self.geo[4], self.geo[5], self.geo[6]
        self.macs = ho * wo * self.m * kh * kw
        self.lo = -128
        if entry.get("dtype") == "i8":
            zero = int_field(entry, "zero", -128, 127, what)
            self.lo = zero if _act(entry, what) == "relu" else -128
        else:
            self.relu = _act(entry, what) == "relu"

    def forward(self, f, x, y, scratch, trace):
        fast = backends.twin(pool_viper)
        (fast.pool_tile if fast else pool_tile)(x, y, self.geo, self.is_max, self.lo)
        if trace:
            trace()


class MaxPool2dI8(AvgPool2dI8):
    is_max = 1


def pool_tile(x, y, geo, is_max, lo):
    """The reference int8 pooling of the whole map (every pixel and channel)."""
    h, w, c, ho, wo, kh, kw, sh, sw, pt, pl = geo
    for oy in range(ho):
        iy = oy * sh - pt
        y0 = -iy if iy < 0 else 0
        y1 = h - iy if h - iy < kh else kh
        for ox in range(wo):
            ix = ox * sw - pl
            x0 = -ix if ix < 0 else 0
            x1 = w - ix if w - ix < kw else kw
            n = (y1 - y0) * (x1 - x0)
            out = (oy * wo + ox) * c
            for ch in range(c):
                s = -128 if is_max else 0
                for ky in range(y0, y1):
                    xi = ((iy + ky) * w + ix + x0) * c + ch
                    for _ in range(x1 - x0):
                        v = x[xi]
                        if is_max:
                            if v > s:
                                s = v
                        else:
                            s += v
                        xi += c
                if not is_max:
                    s = (s + (n >> 1)) // n if s >= 0 else -(((n >> 1) - s) // n)
                y[out + ch] = lo if s < lo else s


class AvgPool2dF32(AvgPool2dI8):
    """float32 average pooling (over the window's real cells)."""

    def forward(self, f, x, y, scratch, trace):
        h, w, c, ho, wo, kh, kw, sh, sw, pt, pl = self.geo
        for oy in range(ho):
            iy = oy * sh - pt
            y0 = -iy if iy < 0 else 0
            y1 = h - iy if h - iy < kh else kh
            for ox in range(wo):
                ix = ox * sw - pl
                x0 = -ix if ix < 0 else 0
                x1 = w - ix if w - ix < kw else kw
                out = (oy * wo + ox) * c
                for ch in range(c):
                    s = None
                    for ky in range(y0, y1):
                        xi = ((iy + ky) * w + ix + x0) * c + ch
                        for _ in range(x1 - x0):
                            v = x[xi]
                            if self.is_max:
                                s = v if s is None or v > s else s
                            else:
                                s = v if s is None else s + v
                            xi += c
                    if not self.is_max:
                        s = s / ((y1 - y0) * (x1 - x0))
                    y[out + ch] = 0.0 if self.relu and s < 0.0 else s
        if trace:
            trace()


class MaxPool2dF32(AvgPool2dF32):
    is_max = 1


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
avgpool2d_i8 = AvgPool2dI8
maxpool2d_i8 = MaxPool2dI8
avgpool2d_f32 = AvgPool2dF32
maxpool2d_f32 = MaxPool2dF32
