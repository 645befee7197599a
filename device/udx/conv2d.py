# 2-D convolution (groups = 1) on HWC activations, streamed from the open blob in tiles of OUTPUT CHANNELS.
# Weights are OHWI, so one channel's window of kh*kw*C weights is contiguous in the file: a tile of r channels is one
# read (+ biases and multipliers for int8), after which every output pixel is visited. Tiling over channels, not over
# pixels, reads each weight from flash once per inference; the input sits in RAM, so only the window sums repeat.
# Layout and arithmetic: host/microdx/ops/conv2d.py (its forward_i8 gives the same integers). Pure Python.
from micropython import const

from udx import backends
from udx.blob import MAX_DIM, field, int_field, read_exact
from udx.dense import _tensor, q_shape, read_tile, requant_fields, requant_row, tile_bytes, tile_views, _act
from udx.errors import FormatError

try:   # the native twin of conv_tile (udx/backends.py)
    from udx import conv2d_viper
except (ImportError, SyntaxError, ValueError):
    conv2d_viper = None

_MAX_SIDE = const(1024)   # kernel, stride and pad bound, as the host reader's


def _ints(entry, key, count, lo, hi, what):
    v = field(entry, key, list, what)
    if len(v) != count:
        raise FormatError("%s: conv2d %s=%r must have %d values" % (what, key, v, count))
    for a in v:
        if type(a) is not int or a < lo or a > hi:   # type, not isinstance: refuses true/false as the host does
            raise FormatError("%s: conv2d %s=%r must be integers in [%d, %d]" % (what, key, v, lo, hi))
    return v


def _small(a, b, c):
    """a*b*c <= MAX_DIM, tested without forming a product that could leave small ints."""
    return a <= MAX_DIM // b and a * b <= MAX_DIM // c


def _geometry(layer, entry, what):
    """Check a conv2d header entry and keep its geometry on `layer`. Every bound the kernel loops over or indexes
    with comes from here: a hostile header fails now, with a FormatError, never later as an IndexError. Window
    bounds are not checked per pixel in forward(): pad < kernel and the out shape make every window overlap the
    input, so each has at least one real cell and all its indices stay inside x, y and the scratch."""
    h, w, c = _ints(entry, "in", 3, 1, MAX_DIM, what)
    ho, wo, m = _ints(entry, "out", 3, 1, MAX_DIM, what)
    kh, kw = _ints(entry, "kernel", 2, 1, _MAX_SIDE, what)
    sh, sw = _ints(entry, "stride", 2, 1, _MAX_SIDE, what)
    pt, pb, pl, pr = _ints(entry, "pad", 4, 0, _MAX_SIDE, what)
    if pt >= kh or pb >= kh or pl >= kw or pr >= kw:
        raise FormatError("%s: conv2d pad %r must be smaller than the kernel %r"
                          % (what, entry["pad"], entry["kernel"]))
    # activations are allocated from these and are not bounded by the file as a dense layer's are: cap them (and a
    # window) at a tensor dimension's limit, which also keeps every index a small int
    if not (_small(h, w, c) and _small(ho, wo, m) and _small(kh, kw, c)):
        raise FormatError("%s: conv2d %r -> %r, kernel %r: more than %d elements in an activation or a window"
                          % (what, entry["in"], entry["out"], entry["kernel"], MAX_DIM))
    if h + pt + pb < kh or w + pl + pr < kw or ho != (h + pt + pb - kh) // sh + 1 or wo != (w + pl + pr - kw) // sw + 1:
        raise FormatError("%s: conv2d %r -> %r does not follow from kernel %r, stride %r, pad %r"
                          % (what, entry["in"], entry["out"], entry["kernel"], entry["stride"], entry["pad"]))
    layer.geo = (h, w, c, ho, wo, kh, kw, sh, sw, pt, pl)   # one tuple: less heap than eleven attributes (int8
    # kernels append their clamp's top and requantization: hi, rq)
    layer.m = m
    layer.k = kh * kw * c      # weights per output channel
    layer.rows = 1
    layer.macs = ho * wo * layer.k * m


def _pad_sum(s, jb, y0, y1, c0, c1, kh, kwc):
    """Sum of the weights s[jb:jb+kh*kwc] (one channel's window) over the kernel cells outside rows [y0, y1) and
    columns [c0, c1) (counted in inputs, c per cell): the cells that fall on padding."""
    t = 0
    for ky in range(kh):
        a = jb + ky * kwc
        if ky < y0 or ky >= y1:
            for i in range(a, a + kwc):
                t += s[i]
        else:
            for i in range(a, a + c0):
                t += s[i]
            for i in range(a + c1, a + kwc):
                t += s[i]
    return t


class Conv2dI8:
    """int8 conv: per output pixel and channel, acc = sum(w_u * x) - 128 * sum(x) over the window, padded cells
    counting as the input zero point `in_zero` (real 0), then requantized like a dense row (the bias has z_in folded
    in). Offset-binary weights w_u = w + 128 read unsigned: no sign extension per MAC. The window's sum is taken once
    per pixel for the tile's channels. Every intermediate is bounded by a sum the host reference asserts in int32."""

    buf = None       # the layer cache: see udx.dense.DenseI8
    loaded = False
    hi = 127         # as udx.dense.DenseI8's: requant_fields sets them on TFLite layers only
    rq = 0
    qb = 4

    def __init__(self, entry, what):
        _geometry(self, entry, what)
        requant_fields(self, entry, what)
        self.geo += (self.hi, self.rq)
        self.z = int_field(entry, "in_zero", -128, 127, what)
        self.row = self.k + 2 * self.qb   # bytes of one channel: weights, bias, multiplier (rq: and an accumulator)

    def attach(self, tensors, what):
        kh, kw, c = self.geo[5], self.geo[6], self.geo[2]
        self.w = _tensor(tensors, "w", "u8", [self.m, kh, kw, c], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", q_shape(self), what)

    def scratch_bytes(self):
        """(one output channel, whole layer) of scratch in bytes, as microdx.ops.conv2d.scratch_bytes."""
        return tile_bytes(self.k, 1, self.row - self.k), tile_bytes(self.k, self.m, self.row - self.k)

    def payload_bytes(self):
        return (self.row - 4 if self.rq else self.row) * self.m   # rq: the accumulator's 4 bytes are scratch only

    def bind(self, scratch_len):
        self.rows = tile_bytes(self.k, self.m, self.row - self.k, scratch_len)

    def views(self, scratch):
        """The tile views of `scratch`, made once (predict() allocates nothing): a channel is k one-byte weights."""
        self.full = tile_views(scratch, self.k, self.rows, 0, self.qb)
        last = self.m % self.rows
        self.last = tile_views(scratch, self.k, last, 0, self.qb) if last else self.full

    def tile(self):
        """The tile kernel: the backend's twin (udx/backends.py), else the reference."""
        fast = backends.twin(conv2d_viper, None, conv2d_ulab)
        return fast.conv_tile if fast else conv_tile

    def forward(self, f, x, y, scratch, trace):
        m = self.m
        k = self.k
        tile = self.tile()
        buf = self.buf if self.buf is not None else scratch
        fresh = not self.loaded
        rows = self.rows
        o = 0
        while o < m:
            r = m - o if m - o < rows else rows
            if fresh:
                read_tile(f, self.full if r == rows else self.last, self.w + o * k, self.b + 4 * o,
                          self.q + self.qb * o)
            tile(buf, x, y, self.geo, o, r, self.z, self.zero, self.lo, m)
            o += r
            if trace:
                trace()
        self.loaded = self.buf is not None


def conv_tile(scratch, x, y, geo, o, r, z, zero, lo, m):
    """The reference int8 conv tile: output channels o .. o+r-1 at every pixel, from the r channels' weights at
    scratch[0:r*k] (k = kh*kw*C each), their biases and multipliers after them. geo: (H, W, C, Ho, Wo, kh, kw, sh,
    sw, pad top, pad left, clamp top, requantization as udx.dense.requant_row's rq); z: the input zero point padded
    cells hold; m: output channels. The native twin (udx/conv2d_viper.py) computes the same integers."""
    h, w, c, ho, wo, kh, kw, sh, sw, pt, pl, hi, rq = geo
    qb = 8 if rq else 4
    k = kh * kw * c
    kwc = kw * c
    wc = w * c
    step = kwc - wc          # (weight index - input index) change from one kernel row to the next
    cells = kh * kw
    wn = (r * k + 3) & ~3
    p = o                  # y index of (pixel, channel o): pixels are m apart
    for oy in range(ho):
        iy = oy * sh - pt  # input row under kernel row 0
        y0 = -iy if iy < 0 else 0              # kernel rows [y0, y1) lie on the input
        y1 = h - iy if h - iy < kh else kh
        ny = y1 - y0
        for ox in range(wo):
            ix = ox * sw - pl
            x0 = -ix if ix < 0 else 0          # kernel columns [x0, x1) lie on the input
            x1 = w - ix if w - ix < kw else kw
            span = (x1 - x0) * c               # a kernel row's real inputs: contiguous in HWC
            xa = ((iy + y0) * w + ix + x0) * c  # first real input of the window
            da = y0 * kwc + x0 * c - xa        # weight index - input index, first real row
            pad = cells - ny * (x1 - x0)       # padded cells: in_zero each
            s = pad * c * z
            xi = xa
            for _ in range(ny):
                for i in range(xi, xi + span):
                    s += x[i]
                xi += wc
            s <<= 7
            for j in range(r):
                jb = j * k
                acc = 0
                xi = xa
                d = da + jb
                for _ in range(ny):
                    for i in range(xi, xi + span):
                        acc += scratch[i + d] * x[i]
                    xi += wc
                    d += step
                if pad and z:   # border pixels only: padding adds in_zero times its weights
                    acc += z * _pad_sum(scratch, jb, y0, y1, x0 * c, x1 * c, kh, kwc)
                y[p + j] = requant_row(acc - s, scratch, wn + 4 * j, wn + 4 * r + qb * j, zero, lo, hi, rq)
            p += m


class Conv2dF32(Conv2dI8):
    """float32 conv: y = sum(w * x) + b over the real cells of each window (padding is 0.0 and adds nothing), then
    optionally ReLU. Shares the planning methods of Conv2dI8 (a subclass costs less heap than a second full class).
    Floats are single precision on MCUs, double on the unix port: results match the host to a tolerance."""

    views = None   # the float tiles slice their float scratch per tile

    def scratch_bytes(self):   # float tiles: 4-byte weights, so no padding before the biases
        return self.row, self.row * self.m

    def bind(self, scratch_len):
        self.rows = min(self.m, scratch_len // self.row)

    def __init__(self, entry, what):
        _geometry(self, entry, what)
        self.relu = _act(entry, what) == "relu"
        self.row = 4 * (self.k + 1)   # bytes of one channel: weights and bias

    def attach(self, tensors, what):
        kh, kw, c = self.geo[5], self.geo[6], self.geo[2]
        self.w = _tensor(tensors, "w", "f32", [self.m, kh, kw, c], what)
        self.b = _tensor(tensors, "b", "f32", [self.m], what)

    def forward(self, f, x, y, scratch, trace):
        h, w, c, ho, wo, kh, kw, sh, sw, pt, pl = self.geo
        m = self.m
        k = self.k
        relu = self.relu
        kwc = kw * c
        wc = w * c
        step = kwc - wc
        mv = memoryview(scratch)   # indexes float32 elements
        o = 0
        while o < m:
            r = m - o if m - o < self.rows else self.rows
            wn = r * k
            f.seek(self.w + 4 * o * k)
            read_exact(f, mv[:wn], "conv2d weights", 4 * wn)
            f.seek(self.b + 4 * o)
            read_exact(f, mv[wn:wn + r], "conv2d bias", 4 * r)
            p = o
            for oy in range(ho):
                iy = oy * sh - pt
                y0 = -iy if iy < 0 else 0
                y1 = h - iy if h - iy < kh else kh
                ny = y1 - y0
                for ox in range(wo):
                    ix = ox * sw - pl
                    x0 = -ix if ix < 0 else 0
                    x1 = w - ix if w - ix < kw else kw
                    span = (x1 - x0) * c
                    xa = ((iy + y0) * w + ix + x0) * c
                    da = y0 * kwc + x0 * c - xa
                    for j in range(r):
                        acc = scratch[wn + j]
                        xi = xa
                        d = da + j * k
                        for _ in range(ny):
                            for i in range(xi, xi + span):
                                acc += scratch[i + d] * x[i]
                            xi += wc
                            d += step
                        if relu and acc < 0.0:
                            acc = 0.0
                        y[p + j] = acc
                    p += m
            o += r
            if trace:
                trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
conv2d_i8 = Conv2dI8
conv2d_f32 = Conv2dF32


try:   # the ulab twin, where the firmware has ulab; imported last because it uses conv_tile from here
    import ulab   # noqa: F401  first: elsewhere the twin's module is never loaded
    from udx import conv2d_ulab
except ImportError:
    conv2d_ulab = None
