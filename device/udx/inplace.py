# In-place layers: for a blob in a memory-mapped ROMFS image (memoryview() takes the open file), udx.plan asks each
# layer whether it can use its tensors where they are, instead of streaming them through the scratch on every
# predict(). Loaded only for such blobs: what it costs in heap is paid only where it saves the scratch.

# The order of the tensors in the whole-layer tile of every kernel with a layer cache (`buf` and `loaded`: dense,
# conv2d, dwconv2d, dense16, codebook, act, softmax, add), each 4-byte aligned (udx.dense.tile_bytes): the order the
# packer writes them in. Kept here rather than as a class attribute per kernel: those cost heap in every model.
ORDER = ("cb", "t", "w", "b", "q")


def attach(m, layer, rom, tensors, what, lo, hi):
    """Attach `tensors` to `layer` (its attach()), letting it read them in place from `rom` (the memory-mapped blob,
    read-only) instead of streaming them through the scratch; returns the (smallest, whole-layer) scratch in bytes
    it then needs (lo, hi: what it needs streamed), counting it in model `m`'s in_place if it runs in place.
    A layer whose kernel reads one whole-layer tile of its tensors (in ORDER, each 4-byte aligned) runs from a view
    of the file when the file has them so too (the packer aligns every tensor to 4 bytes and writes them in that
    order). TFLite-arithmetic layers (rq) stream: their native twins write accumulators into the tile. A kernel with
    a place() method decides itself: sparse layers read values and indices in place and stream only their row
    pointers, biases and multipliers."""
    layer.attach(tensors, what)
    need = _place(layer, rom, tensors) if aligned(rom) else None
    if need is None:
        return lo, hi
    m.in_place += 1
    return need


def _place(layer, rom, tensors):
    own = getattr(layer, "place", None)
    if own is not None:
        return own(rom)
    if not hasattr(layer, "loaded") or getattr(layer, "rq", 0):
        return None
    names = [name for name in ORDER if name in tensors]
    if len(names) != len(tensors):   # a kernel whose tile this module does not know: it streams
        return None
    at = end = tensors[names[0]][0]
    for name in names:
        t = tensors[name]
        if t[0] != (end + 3) & ~3:   # each tensor 4-byte aligned, as in the tile (udx.dense.tile_bytes)
            return None
        end = t[0] + t[1]
    layer.buf = rom[at:end]
    layer.loaded = True   # nothing to read: predict() runs from the view
    if getattr(layer, "rows", None) is not None:
        layer.rows = layer.m
    return 0, 0


def aligned(view):
    """Whether the memory `view` starts on a 4-byte boundary (False where uctypes, which tells, is missing). The
    kernels read a blob's int16 and int32 tensors as halfwords and words, which fault unaligned on a Cortex-M0+
    (RP2040); mpremote's `romfs build` places a file's data at any byte, `microdx deploy --romfs` aligns blobs."""
    try:
        import uctypes
    except ImportError:
        return False
    return not uctypes.addressof(view) & 3
