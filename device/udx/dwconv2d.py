# Depthwise 2-D convolution (depth multiplier 1) on HWC activations, streamed in tiles of channels: a channel's
# kh*kw weights are contiguous (C, kh, kw), so a tile is one read. Channel c of the output reads channel c of the
# input only, every C-th byte. Geometry checks are conv2d's (_geometry), plus equal channels in and out.
# dw_tile is the reference (the host's microdx.ops.dwconv2d.forward_i8 gives the same integers); its native twin
# is udx/dwconv2d_viper.py.
from udx import backends
from udx.conv2d import Conv2dF32, Conv2dI8, _geometry
from udx.dense import _act, _tensor, q_shape, requant_fields, requant_row
from udx.blob import int_field, read_exact
from udx.errors import FormatError

try:   # the native twin of dw_tile (udx/backends.py)
    from udx import dwconv2d_viper
except (ImportError, SyntaxError, ValueError):
    dwconv2d_viper = None


def _dw_geometry(layer, entry, what):
    _geometry(layer, entry, what)
    h, w, c, ho, wo, kh, kw = layer.geo[:7]
    if layer.m != c:
        raise FormatError("%s: dwconv2d keeps the channels, not %d -> %d" % (what, c, layer.m))
    layer.k = kh * kw          # weights per channel
    layer.macs = ho * wo * c * layer.k


class Dwconv2dI8(Conv2dI8):
    """int8 depthwise conv: per pixel and channel, acc = sum(w_u * x) - 128 * sum(x) over the channel's window
    (padded cells = in_zero), requantized like a dense row. Offset-binary weights read unsigned. Planning, tile views
    and streaming are Conv2dI8's (a channel's weights are k = kh*kw bytes here); the tile kernel is dw_tile."""

    def __init__(self, entry, what):
        _dw_geometry(self, entry, what)
        requant_fields(self, entry, what)
        self.geo += (self.hi, self.rq)
        self.z = int_field(entry, "in_zero", -128, 127, what)
        self.row = self.k + 2 * self.qb

    def attach(self, tensors, what):
        kh, kw = self.geo[5], self.geo[6]
        self.w = _tensor(tensors, "w", "u8", [self.m, kh, kw], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", q_shape(self), what)

    def tile(self):
        fast = backends.twin(dwconv2d_viper)
        return fast.dw_tile if fast else dw_tile


def dw_tile(scratch, x, y, geo, o, r, z, zero, lo, m):
    """The reference int8 depthwise tile: channels o .. o+r-1 at every pixel, from their kh*kw weights each at
    scratch[0:r*kh*kw], then their biases and multipliers. geo as conv2d's; z: the value of padded cells; m (the
    channel count, geo's C) only keeps conv_tile's signature."""
    h, w, c, ho, wo, kh, kw, sh, sw, pt, pl, hi, rq = geo
    k = kh * kw
    wn = (r * k + 3) & ~3   # the biases: udx.dense.tile_bytes
    qb = 8 if rq else 4
    for oy in range(ho):
        iy = oy * sh - pt
        y0 = -iy if iy < 0 else 0
        y1 = h - iy if h - iy < kh else kh
        for ox in range(wo):
            ix = ox * sw - pl
            x0 = -ix if ix < 0 else 0
            x1 = w - ix if w - ix < kw else kw
            pad = k - (y1 - y0) * (x1 - x0)
            out = (oy * wo + ox) * c + o
            for j in range(r):
                acc = 0
                xs = pad * z
                for ky in range(y0, y1):
                    xi = ((iy + ky) * w + ix + x0) * c + o + j
                    wi = j * k + ky * kw + x0
                    for _ in range(x1 - x0):
                        v = x[xi]
                        acc += scratch[wi] * v
                        xs += v
                        xi += c
                        wi += 1
                if pad and z:     # padded cells hold in_zero: it meets the weights outside the real window
                    ps = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            if ky < y0 or ky >= y1 or kx < x0 or kx >= x1:
                                ps += scratch[j * k + ky * kw + kx]
                    acc += z * ps
                y[out + j] = requant_row(acc - (xs << 7), scratch, wn + 4 * j, wn + 4 * r + qb * j, zero, lo, hi, rq)


class Dwconv2dF32(Dwconv2dI8):
    """float32 depthwise conv: padded cells are 0.0; ReLU optional. Shares Dwconv2dI8's planning."""

    views = None
    scratch_bytes = Conv2dF32.scratch_bytes
    bind = Conv2dF32.bind

    def __init__(self, entry, what):
        _dw_geometry(self, entry, what)
        self.relu = _act(entry, what) == "relu"
        self.row = 4 * (self.k + 1)

    def attach(self, tensors, what):
        kh, kw = self.geo[5], self.geo[6]
        self.w = _tensor(tensors, "w", "f32", [self.m, kh, kw], what)
        self.b = _tensor(tensors, "b", "f32", [self.m], what)

    def forward(self, f, x, y, scratch, trace):
        h, w, c, ho, wo, kh, kw, sh, sw, pt, pl = self.geo
        m = self.m
        k = self.k
        mv = memoryview(scratch)   # indexes float32 elements
        o = 0
        while o < m:
            r = m - o if m - o < self.rows else self.rows
            wn = r * k
            f.seek(self.w + 4 * o * k)
            read_exact(f, mv[:wn], "dwconv2d weights", 4 * wn)
            f.seek(self.b + 4 * o)
            read_exact(f, mv[wn:wn + r], "dwconv2d bias", 4 * r)
            for oy in range(ho):
                iy = oy * sh - pt
                y0 = -iy if iy < 0 else 0
                y1 = h - iy if h - iy < kh else kh
                for ox in range(wo):
                    ix = ox * sw - pl
                    x0 = -ix if ix < 0 else 0
                    x1 = w - ix if w - ix < kw else kw
                    out = (oy * wo + ox) * c + o
                    for j in range(r):
                        acc = scratch[wn + j]
                        for ky in range(y0, y1):
                            xi = ((iy + ky) * w + ix + x0) * c + o + j
                            wi = j * k + ky * kw + x0
                            for _ in range(x1 - x0):
                                acc += scratch[wi] * x[xi]
                                xi += c
                                wi += 1
                        if self.relu and acc < 0.0:
                            acc = 0.0
                        y[out + j] = acc
            o += r
            if trace:
                trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
dwconv2d_i8 = Dwconv2dI8
dwconv2d_f32 = Dwconv2dF32
