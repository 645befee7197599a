# float32 dense layers (float blobs), streamed in tiles of output rows like udx/dense.py. In a module of their own:
# int8 models, what MCUs run, do not pay the heap for this class (DESIGN.md §9).
from udx.blob import read_exact
from udx.dense import _dims, _act, _tensor


class DenseF32:
    """float32 dense layer: y = W x + b (optionally ReLU). Floats are single precision on MCUs,
    double on the unix port, so results match the host to a tolerance, not bit for bit."""

    def __init__(self, entry, what):
        self.n, self.m = _dims(entry, what)
        self.relu = _act(entry, what) == "relu"
        self.rows = 1
        self.macs = self.n * self.m

    def attach(self, tensors, what):
        self.w = _tensor(tensors, "w", "f32", [self.m, self.n], what)
        self.b = _tensor(tensors, "b", "f32", [self.m], what)

    def scratch_bytes(self):
        row = 4 * (self.n + 1)
        return row, row * self.m

    def payload_bytes(self):
        return 4 * (self.n + 1) * self.m

    def bind(self, scratch_len):
        self.rows = min(self.m, scratch_len // (4 * (self.n + 1)))

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        m = self.m
        mv = memoryview(scratch)  # indexes float32 elements
        row = 0
        while row < m:
            r = m - row if m - row < self.rows else self.rows
            wn = r * n
            f.seek(self.w + row * n * 4)
            read_exact(f, mv[:wn], "dense weights", 4 * wn)
            f.seek(self.b + row * 4)
            read_exact(f, mv[wn:wn + r], "dense bias", 4 * r)
            for j in range(r):
                acc = scratch[wn + j]
                base = j * n
                for i in range(n):
                    acc += scratch[base + i] * x[i]
                if self.relu and acc < 0.0:
                    acc = 0.0
                y[row + j] = acc
            row += r
            if trace:
                trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
dense_f32 = DenseF32
