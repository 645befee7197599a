# Model: the scheduler. Opens a .dxb blob, has udx.plan read its layer table and size the RAM inside a budget,
# allocates those buffers, checks the records, then streams the layers from the file through them on every
# predict(), each through its kernel (udx/<kind>.py). Peak heap = two activation buffers + one scratch buffer +
# small per-layer plans, whatever the model's size.
import array
import gc

from udx import blob, plan
from udx import dense   # noqa: F401  nearly every blob has dense layers: loaded with udx, not mid-open
from udx.errors import InputShapeError

def _copy(src, dst, n):
    """dst[0:n] = src[0:n], allocating nothing (a slice assignment would make slice objects)."""
    for i in range(n):
        dst[i] = src[i]


class Model:
    """A .dxb model streamed from flash.

    Model(path, budget=None, verify=True): `budget` is the RAM in bytes the runtime may hold for activations and
    weight scratch (the interpreter, udx's code and the parsed header come on top, see docs). With no
    budget, the scratch is the whole largest layer or udx.plan.DEFAULT_SCRATCH bytes, whichever is smaller.
    A blob in a memory-mapped ROMFS image (a file under /rom on firmwares with a ROMFS partition) is used in place:
    layers read their weights where they are instead of streaming them through the scratch, which then only holds
    what they still copy (sparse layers' row pointers, biases and multipliers); in_place counts those layers (None
    for a blob that is streamed).
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
        act_max, smin, sfull, whole = plan.read_table(self, self._f, size)[1:]
        self.layers = None   # the first reading's kernels: garbage before the buffers are allocated
        gc.collect()
        plan.buffers(self, budget, act_max, smin, sfull)
        self._allocate(budget, act_max, whole)
        entries = plan.read_table(self, self._f, size)[0]
        self.flash_bytes_per_inference = 0
        self._save = bytearray(len(self.layers))   # 1 after a layer whose output an add takes
        for k in self.saves:
            if k >= 0:
                self._save[k] = 1
        for i, layer in enumerate(self.layers):
            if hasattr(layer, "skip_buf"):
                layer.skip_buf = self._skip
            buf = self._resident.get(i)
            if getattr(layer, "buf", None) is not None:   # in place (udx.inplace): nothing to bind or read
                pass
            elif buf is not None:   # kept in RAM: the whole layer in one tile of its own buffer, read once
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
        check = self._scratch if self.dtype == "i8" and len(self._scratch) >= blob.CHUNK else bytearray(blob.CHUNK)
        for i, e in enumerate(entries):
            what = "layer %d" % i
            if self.in_place is not None and not verify:   # read_table attached them; nothing else to check
                continue
            tensors = blob.read_record(f, size, e, what)
            layer = self.layers[i]
            layer.attach(tensors, what)
            if verify:
                for name, t in tensors.items():
                    blob.check_payload(f, t[0], t[1], t[4], what + " tensor " + name, check)
                if hasattr(layer, "verify"):   # what a kernel needs to trust beyond shapes (sparse: index bounds)
                    layer.verify(f, check, what)
        self.macs = sum(layer.macs for layer in self.layers)

    def _allocate(self, budget, act_max, whole):
        """Allocate the buffers udx.plan.buffers sized, then the layer cache: budget left beyond the scratch keeps
        whole layers resident (int8 kernels with tile views; `whole` holds each layer's bytes, 0 where it cannot be
        kept), largest first, so that repeated inference reads them from flash only once."""
        scratch = self.scratch_bytes
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
        self._skip = None
        if self.skip_n:   # residual adds: the earlier output each one adds, copied here after its layer ran
            self._skip = array.array("b" if self.dtype == "i8" else "f", bytes(self.skip_n * (1 if self.dtype == "i8"
                                                                                             else 4)))
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
        save = self._save
        skip = self._skip
        if skip is not None and -1 in self.saves:
            _copy(a, skip, self.n_in)
        i = 0
        while i < len(layers):   # not `for layer in`: that allocates an iterator per call
            layers[i].forward(self._f, a, b, self._scratch, trace)
            a, b = b, a
            if save[i]:   # skip_n covers every add's operand (any values beyond this one's are never read)
                _copy(a, skip, self.skip_n)
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
