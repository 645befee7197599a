# Codebook int8 layers (k-means weight sharing): 2^bits shared weights (offset-binary u8) and a bits-bit index per
# weight, packed little-endian in rows of `stride` bytes (one spare byte, so two bytes can always be read).
# Streamed in tiles of output rows like dense layers; the arithmetic is the dense kernel's with w_u = cb[index].
# Pure Python; the host reference (microdx.ops.codebook.forward_i8) gives the same integers.
from udx import backends
from udx.blob import int_field, read_exact
from udx.dense import _dims, _act, _tensor, read_tile, requant_row, tile_bytes, tile_views

try:   # the native twin of codebook_tile (udx/backends.py)
    from udx import codebook_viper
except (ImportError, SyntaxError, ValueError):
    codebook_viper = None


class CodebookI8:
    buf = None       # the layer cache: see udx.dense.DenseI8
    loaded = False

    """int8 layer with shared weights: the codebook sits at the start of the scratch for the whole layer, then each
    tile of rows reads its packed indices, biases and multipliers after it."""

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        self.zero = int_field(entry, "zero", -128, 127, what)
        self.lo = self.zero if _act(entry, what) == "relu" else -128
        self.bits = int_field(entry, "bits", 2, 6, what)
        self.k = 1 << self.bits
        self.stride = (self.n * self.bits + 7) // 8 + 1
        self.rows = 1
        self.macs = self.n * self.m

    def attach(self, tensors, what):
        self.cb = _tensor(tensors, "cb", "u8", [self.k], what)
        self.w = _tensor(tensors, "w", "u8", [self.m, self.stride], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", [self.m], what)

    def payload_bytes(self):
        return self.k + (self.stride + 8) * self.m

    def scratch_bytes(self):
        return self.k + tile_bytes(self.stride, 1, 8), self.k + tile_bytes(self.stride, self.m, 8)

    def bind(self, scratch_len):
        self.rows = tile_bytes(self.stride, self.m, 8, scratch_len - self.k)

    def views(self, scratch):
        """The views of `scratch` for the codebook and for every tile (after it), made once: predict() allocates
        nothing."""
        self.cb_view = memoryview(scratch)[:self.k]
        self.full = tile_views(scratch, self.stride, self.rows, self.k)
        last = self.m % self.rows
        self.last = tile_views(scratch, self.stride, last, self.k) if last else self.full

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        m = self.m
        st = self.stride
        buf = self.buf if self.buf is not None else scratch
        fresh = not self.loaded
        if fresh:
            f.seek(self.cb)
            read_exact(f, self.cb_view, "codebook")
        xs = 0
        for i in range(n):
            xs += x[i]
        xs <<= 7
        fast = backends.twin(codebook_viper)
        tile = fast.codebook_tile if fast else codebook_tile
        rows = self.rows
        row = 0
        while row < m:
            r = m - row if m - row < rows else rows
            if fresh:
                read_tile(f, self.full if r == rows else self.last, self.w + row * st, self.b + 4 * row,
                          self.q + 4 * row)
            tile(buf, x, y, n, r, row, xs, self.zero, self.lo, self.bits)
            row += r
            if trace:
                trace()
        self.loaded = self.buf is not None


def codebook_tile(scratch, x, y, n, r, row, xs, zero, lo, bits):
    """The reference codebook tile: the 2^bits shared weights (offset-binary) at scratch[0:2^bits], then r rows of
    packed bits-bit indices (stride bytes each, with the spare byte), their biases and multipliers; xs = 128*sum(x).
    udx/codebook_viper.py computes the same integers."""
    k0 = 1 << bits
    mask = k0 - 1
    st = (n * bits + 7) // 8 + 1
    wn = k0 + ((r * st + 3) & ~3)
    for j in range(r):
        acc = 0
        base = k0 + j * st
        p = 0
        for i in range(n):
            a = base + (p >> 3)
            acc += scratch[((scratch[a] | (scratch[a + 1] << 8)) >> (p & 7)) & mask] * x[i]
            p += bits
        y[row + j] = requant_row(acc - xs, scratch, wn + 4 * j, wn + 4 * r + 4 * j, zero, lo)


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
codebook_i8 = CodebookI8
