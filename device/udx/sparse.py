# CSR-sparse int8 layers (pruned dense layers), streamed from the open blob in tiles of output rows.
# Tensors: v (nonzero weights, offset-binary u8), idx (their input indices: u8 up to 256 inputs, else u16 LE),
# ptr (i32 row starts), b (i32 bias), q (u32 multiplier | shift << 16): see host/microdx/ops/sparse.py.
# sparse_tile is the reference (pure Python; the host's microdx.ops.sparse.forward_i8 gives the same integers);
# udx/sparse_viper.py computes the same integers in native code where the firmware can run it.
from udx import backends
from udx.blob import int_field, read_exact
from udx.dense import _dims, _act, _tensor, read_bias_mult, requant_row
from udx.errors import FormatError

try:   # the native twin of sparse_tile (udx/backends.py)
    from udx import sparse_viper
except (ImportError, SyntaxError, ValueError):
    sparse_viper = None
try:
    from udx import sparse_asm
except (ImportError, SyntaxError, ValueError, AttributeError):
    sparse_asm = None


# rows per tile at most when values and indices are read in place, unless the budget says otherwise: their row
# pointers, biases and multipliers take 12 bytes a row; more rows save only per-tile calls. Measured on qemu-m3 over
# the 80%-pruned 650-1000-1000-6 model with the viper kernel (udx from /rom too): 24.2 instructions per MAC at 128
# rows (1.5 KB of scratch), 23.7 at 256, 23.3 with whole layers (12 KB); `microdx bench models`, udx from /flash:
# 23.6 at 128.
ROM_ROWS = 128


def _i32(buf, k):
    return buf[k] | (buf[k + 1] << 8) | (buf[k + 2] << 16) | (((buf[k + 3] ^ 0x80) - 0x80) << 24)


class SparseI8:
    """int8 CSR layer: for each row, acc = sum(v * x[idx]) - 128 * sum(x[idx]) over its stored weights, then
    requantized like a dense row. A tile of r rows reads r + 1 row pointers, then that tile's values, indices,
    biases and multipliers; the header's row_nnz (the fullest row) bounds a tile before anything is read."""

    rom = None   # the memory-mapped blob when values and indices are read in place (place())

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        self.zero = int_field(entry, "zero", -128, 127, what)
        self.lo = self.zero if _act(entry, what) == "relu" else -128
        self.nnz = int_field(entry, "nnz", 1, self.n * self.m, what)
        self.row_nnz = int_field(entry, "row_nnz", 1, self.n, what)
        self.isz = 1 if self.n <= 256 else 2
        self.rows = 1
        self.macs = self.nnz

    def attach(self, tensors, what):
        self.v = _tensor(tensors, "v", "u8", [self.nnz], what)
        self.idx = _tensor(tensors, "idx", "u8" if self.isz == 1 else "u16", [self.nnz], what)
        self.ptr = _tensor(tensors, "ptr", "i32", [self.m + 1], what)
        self.b = _tensor(tensors, "b", "i32", [self.m], what)
        self.q = _tensor(tensors, "q", "u32", [self.m], what)

    def payload_bytes(self):
        """The bytes of tensors its record must hold; after place(), the bytes a predict() still copies."""
        if self.rom is not None:
            return 12 * self.m + 4
        return self.nnz * (1 + self.isz) + 4 * (self.m + 1) + 8 * self.m

    def verify(self, f, buf, what):
        """FormatError unless every input index is below n, streamed through `buf` once at open: the kernels then
        index the activations without a check per weight (a blob with valid CRCs may still be hostile)."""
        mv = memoryview(buf)
        step = len(buf) & ~1
        n = self.n
        left = self.nnz * self.isz
        f.seek(self.idx)
        while left:
            k = step if left > step else left
            read_exact(f, mv[:k], what + " sparse indices")
            if self.isz == 1:
                for i in range(k):
                    if buf[i] >= n:
                        raise FormatError("%s: sparse input index %d >= %d inputs" % (what, buf[i], n))
            else:
                for i in range(0, k, 2):
                    c = buf[i] | (buf[i + 1] << 8)
                    if c >= n:
                        raise FormatError("%s: sparse input index %d >= %d inputs" % (what, c, n))
            left -= k

    def scratch_bytes(self):
        """(smallest, whole-layer) scratch in bytes: a row takes row_nnz values and indices, two row pointers,
        a bias and a multiplier; the whole layer exactly its payload."""
        row = self.row_nnz * (1 + self.isz) + 17   # + the pad byte of index_offset
        full = self.payload_bytes() + 1
        return row, (full if full > row else row)

    def place(self, rom):
        """Read values and indices in place from `rom`, the memory-mapped blob (udx.inplace): a tile then
        streams only its row pointers, biases and multipliers, 12 bytes a row. Returns the (smallest, whole-layer)
        scratch in bytes that leaves."""
        self.rom = rom
        return 16, 12 * (self.m if self.m < ROM_ROWS else ROM_ROWS) + 4

    def bind(self, scratch_len):
        if self.rom is not None:
            self.rows = min(self.m, (scratch_len - 4) // 12)
        elif scratch_len >= self.scratch_bytes()[1]:
            self.rows = self.m
        else:
            self.rows = min(self.m, (scratch_len - 5) // (self.row_nnz * (1 + self.isz) + 12))

    def forward(self, f, x, y, scratch, trace):
        m = self.m
        isz = self.isz
        zero = self.zero
        lo = self.lo
        fast = backends.twin(sparse_viper, sparse_asm)
        tile = fast.sparse_tile if fast else sparse_tile
        mv = memoryview(scratch)
        rom = self.rom
        vals = scratch if rom is None else rom
        row = 0
        while row < m:
            r = m - row if m - row < self.rows else self.rows
            pb = 4 * (r + 1)
            f.seek(self.ptr + 4 * row)
            read_exact(f, mv[:pb], "sparse row pointers")
            p0 = _i32(scratch, 0)
            nv = _i32(scratch, 4 * r) - p0
            if nv < 0 or nv > r * self.row_nnz:   # CRC-valid but inconsistent: never read past the tile
                raise FormatError("sparse layer: row pointers %d..%d do not fit %d rows" % (p0, p0 + nv, r))
            if rom is None:   # the tile's values and indices follow its row pointers in the scratch
                vo = pb
                io = index_offset(r, nv, isz)
                bo = io + nv * isz
                f.seek(self.v + p0)
                read_exact(f, mv[vo:io], "sparse values")
                f.seek(self.idx + p0 * isz)
                read_exact(f, mv[io:bo], "sparse indices")
            else:             # in place, where the blob has them; the biases follow the row pointers
                vo = self.v + p0
                io = self.idx + p0 * isz
                bo = pb
            read_bias_mult(f, mv, bo, self.b, self.q, row, r)
            bad = tile(scratch, x, y, r, row, p0, nv, isz, zero, lo, vals, vo, io, bo)
            if bad >= 0:   # CRC-valid but inconsistent pointers: the kernel stopped before reading outside the tile
                raise FormatError("sparse layer: row pointer %d out of order" % _i32(scratch, 4 * bad))
            row += r
            if trace:
                trace()


def index_offset(r, nv, isz):
    """Where a tile's indices start in scratch (bytes): after its r + 1 row pointers and nv values, rounded up to
    even for u16 indices so that a Cortex-M0 can load them as halfwords (it faults on unaligned ones)."""
    io = 4 * (r + 1) + nv
    return io + (io & 1) if isz == 2 else io


def sparse_tile(scratch, x, y, r, row, p0, nv, isz, zero, lo, vals, vo, io, bo):
    """The reference CSR tile: rows row .. row+r-1 of y; returns -1, or the index of the first row pointer that is
    out of order (then no row from it on is computed). scratch holds the tile's r+1 row pointers (i32, absolute:
    subtract p0; the first is p0 and the last p0 + nv, checked by the caller) and, from byte bo, r biases and r
    multipliers; `vals` holds its nv values (offset-binary u8) from byte vo and their input indices (isz bytes
    each, LE; checked below n when the model was opened, SparseI8.verify) from byte io: the scratch itself when the
    tile was streamed (index_offset), the memory-mapped blob when they are read in place."""
    k = 0
    for j in range(r):
        end = _i32(scratch, 4 * (j + 1)) - p0
        if end < k or end > nv:
            return j + 1
        acc = 0
        xs = 0
        while k < end:
            if isz == 1:
                c = vals[io + k]
            else:
                c = vals[io + 2 * k] | (vals[io + 2 * k + 1] << 8)
            xv = x[c]
            acc += vals[vo + k] * xv
            xs += xv
            k += 1
        y[row + j] = requant_row(acc - (xs << 7), scratch, bo + 4 * j, bo + 4 * r + 4 * j, zero, lo)
    return -1


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
sparse_i8 = SparseI8
