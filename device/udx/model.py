# Model: opens a .dxb blob, checks it, plans RAM inside a budget, then streams the layers
# from the file on every predict(). Peak heap = two activation buffers + one scratch buffer +
# small per-layer plans, whatever the model's size.
import array
import gc

from udx import blob
from udx import dense   # noqa: F401  nearly every blob has dense layers: loaded with udx, not mid-open
from udx.errors import FormatError, TruncatedError, UnsupportedLayerError, BudgetError, InputShapeError

# The kernels this udx has: kind (or "kind/dtype" where one dtype lives apart), module; the module names each
# kernel class "kind_dtype" (dense_i8 = DenseI8). A flat tuple of literal names costs less heap than a dict of
# tuples, and literals are interned when udx loads; the "kind_dtype" names are interned by their module, so looking
# one up at open interns nothing new (a name first interned mid-open goes into a fresh qstr pool: measured +1 KB of
# peak heap). Modules other than dense are imported only when a blob names them: each costs heap (DESIGN.md §9).
# A new kernel is one module plus one line here.
KERNELS = (
    "dense/f32", "udx.dense_f32",
    "dense", "udx.dense",
    "sparse", "udx.sparse",
    "codebook", "udx.codebook",
    "dense16", "udx.dense16",
    "conv2d", "udx.conv2d",
    "dwconv2d", "udx.dwconv2d",
    "gap", "udx.gap",
    "avgpool2d", "udx.pool",
    "maxpool2d", "udx.pool",
    "act", "udx.act",
    "softmax", "udx.act",
)
DTYPES = ("i8", "f32")


def _kernel(kind, dtype):
    """The kernel class for (kind, dtype), importing its module; None if this udx has none."""
    if dtype not in DTYPES:
        return None
    split = kind + "/" + dtype
    for i in range(0, len(KERNELS), 2):
        if KERNELS[i] == split or KERNELS[i] == kind:
            return getattr(__import__(KERNELS[i + 1], None, None, ("x",)), kind + "_" + dtype, None)
    return None


def kernel_names():
    """The layer kinds this udx has, for messages."""
    return [KERNELS[i] for i in range(0, len(KERNELS), 2) if "/" not in KERNELS[i]]

DEFAULT_SCRATCH = 16384   # bytes of weight scratch when no budget is given
ACT_ITEM = {"i8": 1, "f32": 4}


class Model:
    """A .dxb model streamed from flash.

    Model(path, budget=None, verify=True): `budget` is the RAM in bytes the runtime may hold for activations and
    weight scratch (the interpreter, udx's code and the parsed header come on top, see docs). With no
    budget, the scratch is the whole largest layer or DEFAULT_SCRATCH bytes, whichever is smaller.
    `verify`: check every payload's CRC32 (and sparse index bounds) at open, reading the whole file once;
    False skips that for a blob on storage you trust (a ROMFS image you built, a copy checked at deploy):
    the header and record metas are still checked, payloads are not.
    Raises FormatError (or a subclass) for a bad blob and BudgetError if the model cannot fit.
    """

    def __init__(self, path, budget=None, verify=True):
        # Collect first: garbage left by imports sits between live objects, and what open() allocates next
        # would pin it into holes. Measured on the unix port (`import udx; udx.Model(demo blob).predict(x)`):
        # the smallest heap that runs it drops from 55.6 KB to 50.6 KB.
        gc.collect()
        self._f = open(path, "rb")
        try:
            self._open(budget, verify)
        except Exception:
            self._f.close()
            raise
        self.trace = None   # optional callable, run after every tile (used to sample the heap)

    def _open(self, budget, verify):
        # Order matters on a small heap: the header is read twice. First for the buffer sizes alone, and all it
        # decoded is freed; the big buffers are then allocated while the heap holds little besides udx's code
        # (else the decoded header and the layer objects sit between free blocks and a buffer may find no
        # block, though the heap has room: measured on the unix port, a 7-layer model at budget 8 KB needed a
        # 66.5 KB heap when read once, 48 KB when read twice);
        # then the layer table again, and last the records (many small objects).
        size = blob.file_size(self._f)
        act_max, smin, sfull, whole = self._table(size)[1:]
        gc.collect()
        self._plan(budget, act_max, smin, sfull, whole)
        entries = self._table(size)[0]
        self.flash_bytes_per_inference = 0
        for i, layer in enumerate(self.layers):
            buf = self._resident.get(i)
            if buf is not None:   # kept in RAM: the whole layer in one tile of its own buffer, read once
                layer.bind(len(buf))
                layer.views(buf)
                layer.buf = buf
            else:
                layer.bind(self.scratch_bytes)
                if getattr(layer, "views", None):   # tile views made once, so that predict() allocates nothing
                    layer.views(self._scratch)
                self.flash_bytes_per_inference += layer.payload_bytes()
        f = self._f
        # payloads stream through the scratch (nothing reads it before predict), in few large reads: open then
        # allocates per tensor, not per chunk; a float model's scratch is an array of floats, so it gets a chunk
        check = self._scratch if self.dtype == "i8" else bytearray(blob.CHUNK)
        for i, e in enumerate(entries):
            what = "layer %d" % i
            tensors = blob.read_record(f, size, e, what)
            layer = self.layers[i]
            layer.attach(tensors, what)
            if verify:
                for name, t in tensors.items():
                    blob.check_payload(f, t[0], t[1], t[4], what + " tensor " + name, check)
                if hasattr(layer, "verify"):   # what a kernel needs to trust beyond shapes (sparse: index bounds)
                    layer.verify(f, check, what)
        self.macs = sum(layer.macs for layer in self.layers)

    def _table(self, size):
        """Read and check the header; make self.layers (the kernels, unbound). Returns (layer entries, the largest
        activation in elements, the smallest and the whole-layer scratch in bytes)."""
        f = self._f
        h = blob.read_header(f, size)
        self.name = h.get("model", "")
        self.labels = h.get("labels") or []
        inp = blob.field(h, "input", dict, "header")
        out = blob.field(h, "output", dict, "header")
        self.dtype = blob.field(inp, "dtype", str, "input")
        if self.dtype not in ACT_ITEM:
            raise UnsupportedLayerError("input dtype %r is not supported (i8, f32)" % self.dtype)
        if self.dtype == "i8":   # real = scale * (q - zero)
            self.input_q = (blob.field(inp, "scale", float, "input"), blob.int_field(inp, "zero", -128, 127, "input"))
            self.output_q = (blob.field(out, "scale", float, "output"), blob.int_field(out, "zero", -128, 127, "output"))
        in_shape, self.n_in = blob.shape_field(inp, "shape", "input")
        out_shape, self.n_out = blob.shape_field(out, "shape", "output")
        entries = blob.field(h, "layers", list, "header")
        if not entries:
            raise FormatError("header: model has no layers")
        self.layers = []
        whole = []
        prev, n_prev, act_max = in_shape, self.n_in, self.n_in
        smin = sfull = 0
        for i, e in enumerate(entries):
            what = "layer %d" % i
            kind = blob.field(e, "kind", str, what)
            dtype = blob.field(e, "dtype", str, what)
            cls = _kernel(kind, dtype)
            if cls is None:
                raise UnsupportedLayerError("%s: no kernel for %s/%s in this udx (has: %s)"
                                            % (what, kind, dtype, ", ".join(kernel_names())))
            if dtype != self.dtype:
                raise UnsupportedLayerError("%s: dtype %s differs from the model's %s" % (what, dtype, self.dtype))
            s_in, n_in = blob.shape_field(e, "in", what)
            s_out, n_out = blob.shape_field(e, "out", what)
            if n_in != n_prev:   # a reshape is free: a layer may view the row-major buffer in its own shape
                raise FormatError("%s: input shape %r does not follow %r" % (what, s_in, prev))
            prev, n_prev = s_out, n_out
            act_max = max(act_max, n_out)
            layer = cls(e, what)
            off = blob.int_field(e, "off", 0, 0x7FFFFFFF, what)
            rlen = blob.int_field(e, "len", 8, 0x7FFFFFFF, what)
            if off + rlen > size:
                raise TruncatedError("%s: record of %d bytes at offset %d runs past the end of the file "
                                          "(%d bytes)" % (what, rlen, off, size))
            if layer.payload_bytes() > rlen:
                raise FormatError("%s: %r -> %r needs %d bytes of tensors but its record has %d"
                                  % (what, s_in, s_out, layer.payload_bytes(), rlen))
            lo, hi = layer.scratch_bytes()
            smin, sfull = max(smin, lo), max(sfull, hi)
            whole.append(hi if getattr(layer, "views", None) and self.dtype == "i8" else 0)
            self.layers.append(layer)
        if prev != out_shape:
            raise FormatError("output shape %r does not match the last layer's %r" % (out_shape, prev))
        return entries, act_max, smin, sfull, whole

    def _plan(self, budget, act_max, smin, sfull, whole):
        """Size the scratch inside `budget` (bytes), raise BudgetError if impossible, then allocate."""
        item = ACT_ITEM[self.dtype]
        self.act_bytes = (2 * act_max + self.n_out) * item
        # Arrays are built from a zeroed bytes object of their size, so each briefly needs twice its size:
        # count them double. The i8 scratch is a bytearray (no copy); the f32 one is an array.
        fixed = 2 * self.act_bytes
        per = 1 if self.dtype == "i8" else 2
        if budget is None:
            scratch = min(sfull, max(smin, DEFAULT_SCRATCH))
        else:
            room = (budget - fixed) // per
            if room < smin:
                need = fixed + per * smin
                raise BudgetError(
                    "model needs at least %d bytes (activations %d + one output row of the widest layer %d) "
                    "but the budget is %d: short by %d bytes; raise the budget or narrow the widest layer"
                    % (need, fixed, per * smin, budget, need - budget))
            scratch = min(sfull, room)
        self.scratch_bytes = scratch
        self.budget_bytes = fixed + per * scratch
        self.layers = None   # the first reading's kernels: garbage before the buffers are allocated
        gc.collect()
        need = self.act_bytes + scratch
        free = gc.mem_free()
        if need > free:   # it would fail anyway: say why before allocating (conv activations can be this big)
            least = self.act_bytes + smin
            raise MemoryError("model needs %d bytes of buffers (activations %d + scratch %d) but the heap has %d "
                              "free: short by %d bytes; %s" % (need, self.act_bytes, scratch, free, need - free,
                              "lower the budget (one-row tiles need %d)" % least if least <= free else
                              "even one-row tiles need %d: use a board with more heap" % least))
        if self.dtype == "i8":
            self._scratch = bytearray(scratch)
            self._a = array.array("b", bytes(act_max))
            self._b = array.array("b", bytes(act_max))
            self._out = array.array("b", bytes(self.n_out))
        else:
            self._scratch = array.array("f", bytes(scratch - scratch % 4))
            self._a = array.array("f", bytes(4 * act_max))
            self._b = array.array("f", bytes(4 * act_max))
            self._out = array.array("f", bytes(4 * self.n_out))
        # Layer cache: budget left beyond the scratch keeps whole layers resident (int8 kernels with tile views;
        # `whole` holds each layer's bytes, 0 where it cannot be kept), largest first, so that repeated inference
        # reads them from flash only once
        self._resident = {}
        left = 0 if budget is None else (budget - self.budget_bytes)
        for i in sorted(range(len(whole)), key=lambda i: -whole[i]):
            if 0 < whole[i] <= left and whole[i] + 2048 < gc.mem_free():
                self._resident[i] = bytearray(whole[i])
                left -= whole[i]
                self.budget_bytes += whole[i]

    def predict(self, x):
        """Run one inference on `x` (n_in values: int8 for i8 models, floats for f32 models).

        Returns the output array (int8 logits or floats). The array is reused by the next call:
        copy it to keep it.
        """
        if len(x) != self.n_in:
            raise InputShapeError("input has %d values, the model expects %d" % (len(x), self.n_in))
        a, b = self._a, self._b
        if self.dtype == "i8":
            for i in range(self.n_in):
                v = x[i]
                if v < -128 or v > 127:
                    raise InputShapeError("input[%d]=%d is outside int8 [-128, 127]; quantize first" % (i, v))
                a[i] = v
        else:
            for i in range(self.n_in):
                a[i] = x[i]
        trace = self.trace
        layers = self.layers
        i = 0
        while i < len(layers):   # not `for layer in`: that allocates an iterator per call
            layers[i].forward(self._f, a, b, self._scratch, trace)
            a, b = b, a
            i += 1
        out = self._out
        for i in range(self.n_out):
            out[i] = a[i]
        return out

    def classify(self, x):
        """(index, label) of the largest output for input `x`; ties go to the first, like numpy.argmax.
        The label is the index itself when the blob has no labels."""
        y = self.predict(x)
        best = 0
        for i in range(1, self.n_out):
            if y[i] > y[best]:
                best = i
        return best, (self.labels[best] if best < len(self.labels) else best)

    def probabilities(self, y):
        """Softmax of an output `y` from predict() as a list of floats (int8 logits are dequantized first).
        Float arithmetic: single precision on MCUs, so it matches the host to ~1e-6, not bit for bit."""
        import math

        if self.dtype == "i8":
            s, z = self.output_q
            v = [s * (q - z) for q in y]
        else:
            v = [float(q) for q in y]
        top = max(v)
        e = [math.exp(a - top) for a in v]
        total = sum(e)
        return [a / total for a in e]

    def quantize(self, values):
        """Float input -> int8 list with the blob's input scale and zero point (round half to even).
        On an MCU the division is single precision: a value on a rounding boundary may land 1 step off the host."""
        if self.dtype != "i8":
            return [float(v) for v in values]
        s, z = self.input_q
        return [max(-128, min(127, int(round(v / s)) + z)) for v in values]

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
