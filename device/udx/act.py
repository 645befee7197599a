# Elementwise activations that do not fuse into a layer's clamp: relu6, tanh, sigmoid (host: microdx.ops.act), on
# activations of any shape. int8: a 256-entry table of output codes (offset-binary, code + 128) indexed by the input
# code + 128, built by the converter, so the integers are the host's by construction; the table is read into the
# scratch (or kept resident by the layer cache) before the lookups. float32: the function, in single precision on
# MCUs (tanh and sigmoid through math.exp). SoftmaxI8/F32: probabilities on the device (microdx.ops.softmax).
import math

from udx import backends
from udx.blob import MAX_DIM, field, int_field, read_exact
from udx.dense import _tensor
from udx.errors import FormatError
from udx.gap import Weightless

try:   # the native twin of the int8 lookup (udx/backends.py)
    from udx import act_viper
except (ImportError, SyntaxError, ValueError):
    act_viper = None

FUNCS = ("relu6", "tanh", "sigmoid")


def _count(entry, what):
    """Elements of an elementwise layer's activation (its in and out shapes must be the same)."""
    if entry["in"] != entry["out"]:
        raise FormatError("%s: %s keeps the shape, not %r -> %r" % (what, entry["kind"], entry["in"], entry["out"]))
    n = 1
    for d in entry["in"]:
        if n > MAX_DIM // d:
            raise FormatError("%s: %s activation %r has more than %d values" % (what, entry["kind"], entry["in"],
                                                                               MAX_DIM))
        n *= d
    return n


class ActF32(Weightless):
    """float32 relu6 / tanh / sigmoid, elementwise."""

    macs = 0

    def __init__(self, entry, what):
        self.n = _count(entry, what)
        self.func = field(entry, "func", str, what)
        if self.func not in FUNCS:
            raise FormatError("%s: unknown activation function %r (%s)" % (what, self.func, ", ".join(FUNCS)))
        if entry.get("dtype") == "i8":
            int_field(entry, "zero", -128, 127, what)

    def forward(self, f, x, y, scratch, trace):
        func = self.func
        exp = math.exp
        n = self.n
        if func == "relu6":   # one loop per function: no name test per element
            for i in range(n):
                v = x[i]
                y[i] = 0.0 if v < 0 else (6.0 if v > 6 else v)
        elif func == "tanh":   # 1 - 2 / (e^2v + 1): math.tanh is not on every port
            for i in range(n):
                v = x[i]
                v = -20.0 if v < -20 else (20.0 if v > 20 else v)
                y[i] = 1.0 - 2.0 / (exp(2 * v) + 1.0)
        else:
            for i in range(n):
                v = x[i]
                v = -80.0 if v < -80 else (80.0 if v > 80 else v)
                y[i] = 1.0 / (1.0 + exp(-v))
        if trace:
            trace()


class _Table:
    """A layer whose one tensor `t` (dtype TYPE, NBYTES bytes: a lookup table) is read into the scratch before its
    loop, or kept resident by the layer cache (then read once)."""

    buf = None       # its own buffer when the layer cache keeps the table resident
    loaded = False

    def attach(self, tensors, what):
        self.t = _tensor(tensors, "t", self.TYPE, [256], what)

    def scratch_bytes(self):
        return self.NBYTES, self.NBYTES

    def payload_bytes(self):
        return self.NBYTES

    def views(self, scratch):
        self.view = memoryview(scratch)[:self.NBYTES]

    def table(self, f, scratch):
        """The buffer holding the table, read from the blob unless the layer cache already holds it."""
        t = self.buf if self.buf is not None else scratch
        if not self.loaded:
            f.seek(self.t)
            read_exact(f, self.view, "lookup table")
        self.loaded = self.buf is not None
        return t


class ActI8(_Table, ActF32):
    """int8 activation through its 256-entry table; the pure loop is the reference of udx/act_viper.py."""

    TYPE = "u8"
    NBYTES = 256

    def forward(self, f, x, y, scratch, trace):
        t = self.table(f, scratch)
        fast = backends.twin(act_viper)
        if fast:
            fast.lut_i8(t, x, y, self.n)
        else:
            for i in range(self.n):
                y[i] = t[x[i] + 128] - 128
        if trace:
            trace()


def _top(x, n):
    """The largest of x[0:n]."""
    top = x[0]
    for i in range(1, n):
        if x[i] > top:
            top = x[i]
    return top


class SoftmaxF32(Weightless):
    """float32 softmax of a vector: exp(x - max) / sum."""

    macs = 0

    def __init__(self, entry, what):
        self.n = _count(entry, what)
        if len(entry["in"]) != 1 or self.n > 32767:
            raise FormatError("%s: softmax takes a vector of at most 32767 logits, not %r" % (what, entry["in"]))
        if entry.get("dtype") == "i8":
            int_field(entry, "zero", -128, 127, what)

    def forward(self, f, x, y, scratch, trace):
        n = self.n
        top = _top(x, n)
        s = 0.0
        for i in range(n):
            y[i] = math.exp(x[i] - top)
            s += y[i]
        for i in range(n):
            y[i] /= s
        if trace:
            trace()


class SoftmaxI8(_Table, SoftmaxF32):
    """int8 softmax as microdx.ops.softmax defines it: e = t[max - x] (u16 table of 2**15 exp(-scale d)), output
    (256 e + sum // 2) // sum - 128, at most 127; inside int32 for up to 32767 logits. Pure Python: O(logits)."""

    TYPE = "u16"
    NBYTES = 512
    tfl = False

    def __init__(self, entry, what):
        SoftmaxF32.__init__(self, entry, what)
        if "tfl" in entry:   # TFLite's own softmax (an imported int8 .tflite): its u32 exp table, udx/softmax_tfl.py
            int_field(entry, "tfl", 1, 1, what)
            if self.n > 4095:
                raise FormatError("%s: TFLite's softmax sums at most 4095 exps in int32, not %d" % (what, self.n))
            self.tfl = True
            self.TYPE = "u32"
            self.NBYTES = 1024

    def forward(self, f, x, y, scratch, trace):
        t = self.table(f, scratch)
        n = self.n
        if self.tfl:
            from udx.softmax_tfl import softmax
            softmax(t, x, y, n)
            if trace:
                trace()
            return
        top = _top(x, n)
        s = 0
        for i in range(n):
            k = 2 * (top - x[i])
            s += t[k] | (t[k + 1] << 8)
        half = s >> 1
        for i in range(n):
            k = 2 * (top - x[i])
            v = (((t[k] | (t[k + 1] << 8)) << 8) + half) // s - 128
            y[i] = 127 if v > 127 else v
        if trace:
            trace()


# the kernel classes by "kind_dtype", the names udx.plan looks up (its KERNELS)
act_i8 = ActI8
act_f32 = ActF32
softmax_i8 = SoftmaxI8
softmax_f32 = SoftmaxF32
