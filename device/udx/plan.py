# Planning: reads only a blob's header and layer table, makes each layer's kernel (unbound), and decides the RAM:
# the activation buffers, the weight scratch inside the budget, and (with the kernels' bind, which sets tile
# heights from the scratch) the tiles; it refuses, with the numbers, a model that cannot run in the budget or the
# heap before anything big is allocated. udx.model allocates what this decides and schedules the layers through it;
# the kernels (udx/<kind>.py) compute. Activations: a sequential model needs two buffers of its largest activation
# (each layer reads one and writes the other) and one of its output, whatever its kinds; conv maps count as their
# H*W*C values. A model with residual adds needs one more, the skip buffer, of its largest skipped activation.
import gc

from udx import blob
from udx.errors import FormatError, TruncatedError, UnsupportedLayerError, BudgetError

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
    "add", "udx.add",
)
DTYPES = ("i8", "f32")


def kernel(kind, dtype):
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


def read_table(m, f, size):
    """Read and check the header of the blob open as `f` (`size` bytes); set model `m`'s facts (name, labels, dtype,
    input_q / output_q, n_in, n_out) and m.layers (the kernels, unbound). Returns (layer entries, the largest
    activation in elements, the smallest and the whole-layer scratch in bytes, each layer's bytes if the layer
    cache could keep it, else 0). A blob memory-mapped (a file in a ROMFS image: memoryview() takes it) has each
    layer's record read too (int8 models), and the layers that can use their weights in place (udx.inplace)
    count only the scratch they still need; m.in_place counts them (None: the blob is streamed)."""
    try:
        rom = memoryview(f)
    except TypeError:   # a stream
        rom = None
    h = blob.read_header(f, size)
    m.name = h.get("model", "")
    m.labels = h.get("labels") or []
    inp = blob.field(h, "input", dict, "header")
    out = blob.field(h, "output", dict, "header")
    m.dtype = blob.field(inp, "dtype", str, "input")
    if m.dtype not in ACT_ITEM:
        raise UnsupportedLayerError("input dtype %r is not supported (i8, f32)" % m.dtype)
    if m.dtype == "i8":   # real = scale * (q - zero)
        m.input_q = (blob.field(inp, "scale", float, "input"), blob.int_field(inp, "zero", -128, 127, "input"))
        m.output_q = (blob.field(out, "scale", float, "output"), blob.int_field(out, "zero", -128, 127, "output"))
    in_shape, m.n_in = blob.shape_field(inp, "shape", "input")
    out_shape, m.n_out = blob.shape_field(out, "shape", "output")
    entries = blob.field(h, "layers", list, "header")
    if not entries:
        raise FormatError("header: model has no layers")
    m.layers = []
    m.in_place = None if rom is None or m.dtype != "i8" else 0
    whole = []
    prev, n_prev, act_max = in_shape, m.n_in, m.n_in
    smin = sfull = 0
    # residual adds: the layers whose output the scheduler keeps (-1: the input) and the skip buffer's elements
    m.saves = []
    m.skip_n = 0
    last_add = -1
    outs = []   # each layer's output elements (for the adds' checks; freed with this call)
    for i, e in enumerate(entries):
        what = "layer %d" % i
        kind = blob.field(e, "kind", str, what)
        dtype = blob.field(e, "dtype", str, what)
        cls = kernel(kind, dtype)
        if cls is None:
            raise UnsupportedLayerError("%s: no kernel for %s/%s in this udx (has: %s)"
                                        % (what, kind, dtype, ", ".join(kernel_names())))
        if dtype != m.dtype:
            raise UnsupportedLayerError("%s: dtype %s differs from the model's %s" % (what, dtype, m.dtype))
        s_in, n_in = blob.shape_field(e, "in", what)
        s_out, n_out = blob.shape_field(e, "out", what)
        if n_in != n_prev:   # a reshape is free: a layer may view the row-major buffer in its own shape
            raise FormatError("%s: input shape %r does not follow %r" % (what, s_in, prev))
        prev, n_prev = s_out, n_out
        act_max = max(act_max, n_out)
        layer = cls(e, what)
        if kind == "add":   # one skip buffer, so one live skip: it starts at or after the previous add
            k = layer.skip
            if k < last_add or k >= i:
                raise FormatError("%s: adds layer %d's output: it must come before this layer and not before the "
                                  "previous add (layer %d)" % (what, k, last_add))
            if (m.n_in if k < 0 else outs[k]) != n_in:
                raise FormatError("%s: adds layer %d's output, which does not hold %d values" % (what, k, n_in))
            last_add = i
            m.saves.append(k)
            m.skip_n = max(m.skip_n, n_in)
        outs.append(n_out)
        off = blob.int_field(e, "off", 0, 0x7FFFFFFF, what)
        rlen = blob.int_field(e, "len", 8, 0x7FFFFFFF, what)
        if off + rlen > size:
            raise TruncatedError("%s: record of %d bytes at offset %d runs past the end of the file "
                                      "(%d bytes)" % (what, rlen, off, size))
        if layer.payload_bytes() > rlen:
            raise FormatError("%s: %r -> %r needs %d bytes of tensors but its record has %d"
                              % (what, s_in, s_out, layer.payload_bytes(), rlen))
        lo, hi = layer.scratch_bytes()
        if m.in_place is not None:   # memory-mapped: only such blobs load the module (it counts m.in_place)
            from udx import inplace

            lo, hi = inplace.attach(m, layer, rom, blob.read_record(f, size, e, what), what, lo, hi)
        smin, sfull = max(smin, lo), max(sfull, hi)
        whole.append(hi if getattr(layer, "views", None) and m.dtype == "i8" else 0)   # in place: hi is 0
        m.layers.append(layer)
    if prev != out_shape:
        raise FormatError("output shape %r does not match the last layer's %r" % (out_shape, prev))
    return entries, act_max, smin, sfull, whole


def buffers(m, budget, act_max, smin, sfull):
    """Size model `m`'s buffers inside `budget` (bytes; None: the default scratch): sets m.act_bytes, m.scratch_bytes
    and m.budget_bytes (what the budget counts). BudgetError if even one-row tiles do not fit the budget,
    MemoryError (with the numbers) if the buffers would not fit the free heap: both before anything is allocated."""
    item = ACT_ITEM[m.dtype]
    m.act_bytes = (2 * act_max + m.n_out + m.skip_n) * item   # the skip buffer of residual adds, if any
    # Arrays are built from a zeroed bytes object of their size, so each briefly needs twice its size:
    # count them double. The i8 scratch is a bytearray (no copy); the f32 one is an array.
    fixed = 2 * m.act_bytes
    per = 1 if m.dtype == "i8" else 2
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
    m.scratch_bytes = scratch
    m.budget_bytes = fixed + per * scratch
    gc.collect()
    need = m.act_bytes + scratch
    free = gc.mem_free()
    if need > free:   # it would fail anyway: say why before allocating (conv activations can be this big)
        least = m.act_bytes + smin
        raise MemoryError("model needs %d bytes of buffers (activations %d + scratch %d) but the heap has %d "
                          "free: short by %d bytes; %s" % (need, m.act_bytes, scratch, free, need - free,
                          "lower the budget (one-row tiles need %d)" % least if least <= free else
                          "even one-row tiles need %d: use a board with more heap" % least))
