# Fully connected layers, streamed from the open blob in tiles of output rows.
# Pure-Python kernels: they run on every MicroPython and CircuitPython build. The fast twins (udx/dense_viper.py,
# dense_asm.py, dense_ulab.py) give the same integers.
from udx import backends
from udx.blob import MAX_DIM, int_field, read_exact
from udx.errors import FormatError

try:   # the native twins of dense_tile (udx/backends.py)
    from udx import dense_viper
except (ImportError, SyntaxError, ValueError):
    dense_viper = None
try:
    from udx import dense_asm
except (ImportError, SyntaxError, ValueError, AttributeError):
    dense_asm = None


def _dims(entry, what):
    """(inputs, outputs) of a dense layer. Its output is a vector; its input may be a conv's (H, W, C), taken
    flattened: the activation buffers hold it row-major (HWC) already, so n is the product of the dims."""
    if len(entry["out"]) != 1:
        raise FormatError("%s: dense layer needs a vector out, got %r -> %r" % (what, entry["in"], entry["out"]))
    n = 1
    for d in entry["in"]:
        if n > MAX_DIM // d:   # its weights could not be stored (a tensor dim is at most MAX_DIM); no long ints
            raise FormatError("%s: dense layer input %r has more than %d values" % (what, entry["in"], MAX_DIM))
        n *= d
    return n, entry["out"][0]


def _act(entry, what):
    """The fused activation: None or "relu"."""
    act = entry.get("act")
    if act not in (None, "relu"):
        raise FormatError("%s: unknown activation %r" % (what, act))
    return act


def _tensor(tensors, name, dtype, shape, what):
    t = tensors.get(name)
    if t is None:
        raise FormatError("%s: tensor %r missing" % (what, name))
    if t[2] != dtype or t[3] != shape:
        raise FormatError("%s: tensor %r is %s%r, expected %s%r" % (what, name, t[2], t[3], dtype, shape))
    return t[0]


def read_bias_mult(f, mv, at, b, q, row, r):
    """Read rows row .. row+r-1 of the bias (i32) and multiplier (u32) tensors at file offsets b, q into
    mv[at:at+4r] and mv[at+4r:at+8r]: the tail of every int8 tile."""
    f.seek(b + row * 4)
    read_exact(f, mv[at:at + 4 * r], "bias")
    f.seek(q + row * 4)
    read_exact(f, mv[at + 4 * r:at + 8 * r], "multipliers")


def requant_row(acc, scratch, kb, kq, zero, lo, hi=127, rq=0):
    """int8 output of one row: acc (sum of w*x, int32) + the int32 bias at scratch[kb:kb+4], requantized, plus `zero`,
    clamped to [lo, hi]. rq 0: microdx's multiplier (16 bits) and shift (8 bits) at scratch[kq:kq+3]; rq 1 or 2 (layers
    of int8 .tflite models): TFLite's Q31 multiplier and shift at scratch[kq:kq+5], single or double rounding."""
    acc += (scratch[kb] | (scratch[kb + 1] << 8) | (scratch[kb + 2] << 16)
            | (((scratch[kb + 3] ^ 0x80) - 0x80) << 24))
    if rq:
        from udx.tflq import requant   # only models imported from .tflite load it
        v = requant(acc, scratch[kq] | (scratch[kq + 1] << 8), scratch[kq + 2] | (scratch[kq + 3] << 8),
                    (scratch[kq + 4] ^ 0x80) - 0x80, rq == 1) + zero
    else:
        mult = scratch[kq] | (scratch[kq + 1] << 8)
        s = scratch[kq + 2]
        # (acc * mult) >> s, rounded half up, split in 16-bit halves so nothing leaves int32.
        v = (((acc >> 16) * mult + (((acc & 0xFFFF) * mult) >> 16) + (1 << (s - 17))) >> (s - 16)) + zero
    return lo if v < lo else (hi if v > hi else v)


def requant_fields(layer, entry, what):
    """The output clamp and requantization of an int8 dense or conv entry, on `layer`: lo (the zero point under ReLU)
    and, for layers of int8 .tflite models, hi ("hi": a fused ReLU6's top), rq ("rq": 1 or 2, TFLite's arithmetic)
    and qb = 8, the bytes of `q` per output (the Q31 multiplier, then the shift). Without them the class defaults
    hold (127, 0, 4): instance attributes cost heap per layer."""
    layer.zero = int_field(entry, "zero", -128, 127, what)
    layer.lo = layer.zero if _act(entry, what) == "relu" else -128
    if "hi" in entry:
        layer.hi = int_field(entry, "hi", layer.lo, 127, what)
    if "rq" in entry:
        layer.rq = int_field(entry, "rq", 1, 2, what)
        layer.qb = 8


def q_shape(layer):
    """The shape of an int8 layer's q tensor: one u32 per output, or (multiplier, shift) pairs with rq."""
    return [layer.m, 2] if layer.rq else [layer.m]


class DenseI8:
    """int8 dense layer: y = clamp(requant(W x + b) + zero), W stored offset-binary (int8 + 128).

    Offset-binary weights read unsigned from a bytearray, so no per-MAC sign extension is needed:
    sum(w*x) = sum((w+128)*x) - 128*sum(x), and sum(x) is taken once per layer.
    Integer contract (checked by the host reference): every intermediate stays inside int32.
    """

    buf = None       # its own buffer when the model keeps it resident (the layer cache), read by the first predict,
    loaded = False   # or a view of a memory-mapped blob (udx.inplace)
    hi = 127         # clamp top, requantization and q bytes per output unless requant_fields sets them
    rq = 0
    qb = 4

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        requant_fields(self, entry, what)
        self.rows = 1
        self.macs = self.n * self.m

    def attach(self, tensors, what):
        """Take the file offsets of this layer's tensors (from its record) after checking dtype and shape."""
        self.w = _tensor(tensors, "w", "u8", [self.m, self.n], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", q_shape(self), what)

    def scratch_bytes(self):
        """(smallest, whole-layer) scratch in bytes: one output row needs n weights (padded to 4) + bias + multiplier
        (with rq, also TFLite's shift and the row's int32 accumulator, which the native twins requantize a tile at a
        time)."""
        return tile_bytes(self.n, 1, 2 * self.qb), tile_bytes(self.n, self.m, 2 * self.qb)

    def payload_bytes(self):
        """Bytes of tensors this layer's record must hold (checked before any buffer is sized from n, m)."""
        return (self.n + 4 + self.qb) * self.m

    def bind(self, scratch_len):
        """Fix the tile height (output rows per read) for a scratch of `scratch_len` bytes."""
        self.rows = tile_bytes(self.n, self.m, 2 * self.qb, scratch_len)

    def views(self, scratch):
        """Make the views of `scratch` every tile reads into, once: predict() then allocates nothing."""
        self.full = tile_views(scratch, self.n, self.rows, 0, self.qb)
        last = self.m % self.rows
        self.last = tile_views(scratch, self.n, last, 0, self.qb) if last else self.full

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        m = self.m
        xs = 0
        for i in range(n):
            xs += x[i]
        xs <<= 7
        zero = self.zero
        lo = self.lo
        hi = self.hi
        rq = self.rq
        qb = self.qb
        fast = backends.twin(dense_viper, dense_asm, dense_ulab)
        short = fast is not None and fast is not dense_ulab
        if rq and short:   # TFLite's arithmetic: its own native twin, loaded only by such layers
            from udx import dense_tfl_viper as fast
            short = False
        tile = fast.dense_tile if fast else dense_tile
        buf = self.buf if self.buf is not None else scratch
        fresh = not self.loaded
        rows = self.rows
        row = 0
        while row < m:
            r = m - row if m - row < rows else rows
            if fresh:
                read_tile(f, self.full if r == rows else self.last, self.w + row * n, self.b + 4 * row,
                          self.q + qb * row)
            if short:   # microdx's own layers through dense_viper / dense_asm: no clamp top, no rq
                tile(buf, x, y, n, r, row, xs, zero, lo)
            else:
                tile(buf, x, y, n, r, row, xs, zero, lo, hi, rq)
            row += r
            if trace:
                trace()
        self.loaded = self.buf is not None


def tile_bytes(n, r, d, size=0):
    """Bytes of a tile of r rows of n weight bytes, then d bytes per row (bias, multiplier...); or, given `size`
    (bytes of scratch, at least one row's tile), the most rows, at most r, whose tile fits it. Every tile pads its
    weights to a multiple of 4, (r*n + 3) & ~3, where its biases start: the blob aligns every tensor to 4 bytes
    too, so that a whole layer's tensors lie in the file as in its tile (udx.inplace). One function, its
    parameters named as udx already names things: each new name at import is interned, and one too many starts a
    fresh string pool (3.9 KB on the unix port, measured)."""
    if size:
        k = size // (n + d)
        r = k if k < r else r
        return r - 1 if ((r * n + 3) & ~3) + d * r > size else r
    return ((r * n + 3) & ~3) + d * r


def tile_views(scratch, n, r, at=0, qb=4):
    """(weights, biases, multipliers) views of `scratch` for a tile of r rows of n weight bytes each, laid out as
    every int8 tile is from byte `at` (a multiple of 4) on: r*n weight bytes padded to 4, then r i32 biases, then r
    multipliers of qb bytes (then, with TFLite's 8-byte multipliers, room for r int32 accumulators)."""
    mv = memoryview(scratch)
    wn = at + ((r * n + 3) & ~3)
    return mv[at:at + r * n], mv[wn:wn + 4 * r], mv[wn + 4 * r:wn + (4 + qb) * r]


def read_tile(f, views, w, b, q):
    """Read a tile's weights, biases and multipliers from file offsets w, b, q into its three views."""
    f.seek(w)
    read_exact(f, views[0], "weights")
    f.seek(b)
    read_exact(f, views[1], "bias")
    f.seek(q)
    read_exact(f, views[2], "multipliers")


def dense_tile(scratch, x, y, n, r, row, xs, zero, lo, hi, rq):
    """The reference int8 tile: rows row .. row+r-1 of y from the r rows of offset-binary weights at scratch[0:r*n],
    their biases from r*n rounded up to 4 (tile_bytes) and multipliers after them; xs = 128 * sum(x); clamp [lo,
    hi]; rq: requant_row's. Fast kernels (udx/dense_viper.py) compute exactly these integers."""
    wn = (r * n + 3) & ~3
    qb = 8 if rq else 4
    for j in range(r):
        acc = 0
        base = j * n
        for i in range(n):
            acc += scratch[base + i] * x[i]
        y[row + j] = requant_row(acc - xs, scratch, wn + 4 * j, wn + 4 * r + qb * j, zero, lo, hi, rq)


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
dense_i8 = DenseI8


try:   # the ulab twin, where the firmware has ulab; imported last because it uses requant_row from here
    import ulab   # noqa: F401  first: elsewhere the twin's module is never loaded (its names would cost heap)
    from udx import dense_ulab
except ImportError:
    dense_ulab = None
