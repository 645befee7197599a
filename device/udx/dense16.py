# Dense layers with 16-bit weights (precision scaling), streamed in tiles of output rows like dense.py:
# Dense16I8: int16 weights (signed LE) in an int8 model; Dense16F32: float16 weights in a float model.
# Pure Python; the host references (microdx.ops.dense16) give the same integers / the same floats to rounding.
from struct import unpack_from

from udx import backends
from udx.blob import int_field, read_exact
from udx.dense import _dims, _act, _tensor, read_tile, requant_row, tile_bytes, tile_views

try:   # the native twin of dense16_tile (udx/backends.py)
    from udx import dense16_viper
except (ImportError, SyntaxError, ValueError):
    dense16_viper = None


class Dense16I8:
    """int8 activations, int16 weights: acc = sum(w * x), requantized like a dense row. The quantizer bounds each
    row's L1 norm so that every partial sum and the folded bias stay inside int32 for any int8 input. Streams like
    udx.dense.DenseI8; kept apart: sharing its loop through methods and class constants cost every model 288 bytes
    of heap (measured on the unix port)."""

    buf = None       # the layer cache: see udx.dense.DenseI8
    loaded = False

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        self.zero = int_field(entry, "zero", -128, 127, what)
        self.lo = self.zero if _act(entry, what) == "relu" else -128
        self.rows = 1
        self.macs = self.n * self.m

    def attach(self, tensors, what):
        self.w = _tensor(tensors, "w", "i16", [self.m, self.n], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", [self.m], what)

    def scratch_bytes(self):
        return tile_bytes(2 * self.n, 1, 8), tile_bytes(2 * self.n, self.m, 8)

    def payload_bytes(self):
        return (2 * self.n + 8) * self.m

    def bind(self, scratch_len):
        self.rows = tile_bytes(2 * self.n, self.m, 8, scratch_len)

    def views(self, scratch):
        """The tile views of `scratch`, made once (predict() allocates nothing): a row is 2n weight bytes."""
        self.full = tile_views(scratch, 2 * self.n, self.rows)
        last = self.m % self.rows
        self.last = tile_views(scratch, 2 * self.n, last) if last else self.full

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        m = self.m
        fast = backends.twin(dense16_viper)
        tile = fast.dense16_tile if fast else dense16_tile
        buf = self.buf if self.buf is not None else scratch
        fresh = not self.loaded
        rows = self.rows
        row = 0
        while row < m:
            r = m - row if m - row < rows else rows
            if fresh:
                read_tile(f, self.full if r == rows else self.last, self.w + 2 * row * n, self.b + 4 * row,
                          self.q + 4 * row)
            tile(buf, x, y, n, r, row, self.zero, self.lo)
            row += r
            if trace:
                trace()
        self.loaded = self.buf is not None


def dense16_tile(scratch, x, y, n, r, row, zero, lo):
    """The reference int16-weight tile: rows row .. row+r-1 of y from r rows of 2n bytes of signed LE weights at
    scratch[0:2rn], their biases and multipliers after them (udx/dense16_viper.py: the same integers)."""
    wn = (2 * r * n + 3) & ~3
    for j in range(r):
        acc = 0
        k = 2 * j * n
        for i in range(n):
            acc += (((scratch[k] | (scratch[k + 1] << 8)) ^ 0x8000) - 0x8000) * x[i]
            k += 2
        y[row + j] = requant_row(acc, scratch, wn + 4 * j, wn + 4 * r + 4 * j, zero, lo)


def _a4(k):
    return (k + 3) & ~3


class Dense16F32:
    """Float model, float16 weights: a tile of r rows reads 2rn bytes of halves (padded to 4) into the float scratch,
    then r float32 biases after them; each half is decoded by struct ('e'). Floats are single precision on MCUs,
    double on the unix port: results match the host to a tolerance, as for DenseF32."""

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        self.relu = _act(entry, what) == "relu"
        self.rows = 1
        self.macs = self.n * self.m

    def attach(self, tensors, what):
        self.w = _tensor(tensors, "w", "f16", [self.m, self.n], what)
        self.b = _tensor(tensors, "b", "f32", [self.m], what)

    def scratch_bytes(self):
        return _a4(2 * self.n) + 4, _a4(2 * self.n * self.m) + 4 * self.m

    def payload_bytes(self):
        return (2 * self.n + 4) * self.m

    def bind(self, scratch_len):
        room = scratch_len & ~3   # the float scratch holds whole floats
        r = min(self.m, room // (2 * self.n + 4))
        while r > 1 and _a4(2 * r * self.n) + 4 * r > room:
            r -= 1
        self.rows = r

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        m = self.m
        mv = memoryview(scratch)  # indexes float32 elements
        row = 0
        while row < m:
            r = m - row if m - row < self.rows else self.rows
            fb = _a4(2 * r * n) >> 2     # first float of the biases
            f.seek(self.w + 2 * row * n)
            # whole floats: the last one may take 2 bytes past this tile's halves (the next row, or the padding
            # before the bias tensor), never past the end of the record
            read_exact(f, mv[:fb], "dense16 weights", 4 * fb)
            f.seek(self.b + row * 4)
            read_exact(f, mv[fb:fb + r], "dense16 bias", 4 * r)
            for j in range(r):
                acc = scratch[fb + j]
                k = 2 * j * n
                for i in range(n):
                    acc += unpack_from("<e", scratch, k)[0] * x[i]
                    k += 2
                if self.relu and acc < 0.0:
                    acc = 0.0
                y[row + j] = acc
            row += r
            if trace:
                trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
dense16_i8 = Dense16I8
dense16_f32 = Dense16F32
