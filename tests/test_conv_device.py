"""conv2d on the device (device/udx/conv2d.py under the MicroPython unix port): the int8 kernel gives exactly the host
reference's integers (microdx.ops.conv2d.forward_i8) for every kernel shape, stride, uneven padding and tiling of the
output channels; the f32 kernel matches to float tolerance; peak heap is set by the budget, not by the channel count;
a bad conv2d header entry is refused with a FormatError by both readers. The host side: tests/test_conv.py."""
import copy
import math

import numpy as np
import pytest

from helpers import open_each, rewrite_header, run_mpy, write_blob
from microdx import blob_reader, blob_writer, emulator, errors, ram, reference
from microdx.ir import canonicalize, layer_shapes
from microdx.quantize import quantize_graph

HEAP = 64 * 1024


def cnn(shape, convs, classes=None, seed=0):
    """Float graph: convs [(out, (kh, kw), (sh, sw), (top, bottom, left, right), relu)], then flatten + dense of
    `classes` outputs (none: the last conv is the output layer)."""
    rng = np.random.default_rng(seed)
    ops, c = [], shape[2]
    for i, (out, kernel, stride, pad, relu) in enumerate(convs):
        w = rng.normal(size=(out, *kernel, c)) / math.sqrt(kernel[0] * kernel[1] * c)
        ops.append(("conv2d", f"c{i}", {"w": w, "b": rng.normal(size=out) * 0.1, "stride": np.array(stride),
                                        "pad": np.array(pad)}))
        if relu:
            ops.append(("relu", f"r{i}", {}))
        c = out
    if classes:
        n = math.prod(layer_shapes(canonicalize("cnn", shape, ops))[-1][1])
        ops += [("flatten", "f", {}), ("dense", "d", {"w": rng.normal(size=(classes, n)) / math.sqrt(n),
                                                      "b": rng.normal(size=classes) * 0.1})]
    return canonicalize("cnn", shape, ops)


def int8_model(shape, convs, classes=None, lo=0.0, hi=1.0, seed=0):
    """(int8 graph, int8 test rows): calibrated on uniform [lo, hi] inputs (lo = 0: input zero point -128, so that
    padding cells hold -128, not 0), tested on some of them and on the int8 extremes."""
    rng = np.random.default_rng(seed + 100)
    g = cnn(shape, convs, classes, seed)
    calib = rng.uniform(lo, hi, size=(48, *shape))
    q, _ = quantize_graph(g, calib)
    n = math.prod(shape)
    edges = [np.full(n, -128), np.full(n, 127), np.resize([-128, 127], n), np.resize([127, 127, -128], n),
             rng.integers(-128, 128, size=n)]
    return q, np.vstack([reference.prepare_input(q, calib[:12])] + edges).astype(np.int8)


def conv_tiles(graph, budget):
    """Output channels per tile of every conv layer under `budget`, as udx plans them (Model._plan, bind)."""
    p = ram.plan(graph)
    per = 1 if graph.dtype == "i8" else 2
    sfull = max(x["full_scratch"] for x in p["layers"])
    scratch = sfull if budget is None else min(sfull, (budget - p["activation_bytes"]) // per)
    return [min(layer.tensors["w"].shape[0], scratch // x["row_scratch"])
            for layer, x in zip(graph.layers, p["layers"]) if layer.kind == "conv2d"]


def run_exact(tmp_path, graph, x, budget):
    blob = write_blob(tmp_path / "m.dxb", graph)
    run = emulator.run(blob, x, heap=HEAP, budget=budget)
    assert run.outputs.dtype == np.int8
    np.testing.assert_array_equal(run.outputs, reference.run(graph, x))
    return run


CASES = {   # name -> (input (H, W, C), convs, dense outputs or None, calibration range)
    "3x3 stride 1 pad 1": ((9, 8, 3), [(6, (3, 3), (1, 1), (1, 1, 1, 1), True)], 5, (0.0, 1.0)),
    "3x3 stride 2 SAME (pad bottom/right only)": ((12, 10, 3), [(7, (3, 3), (2, 2), (0, 1, 0, 1), True)], 4,
                                                  (0.0, 1.0)),
    "5x3 stride (2, 1) pad (1, 1, 0, 2)": ((11, 7, 2), [(5, (5, 3), (2, 1), (1, 1, 0, 2), True)], 4, (-1.0, 1.0)),
    "1x1 stride 1": ((6, 5, 4), [(9, (1, 1), (1, 1), (0, 0, 0, 0), False)], 3, (-0.3, 1.0)),
    "1x1 stride 2, odd input": ((7, 5, 4), [(5, (1, 1), (2, 2), (0, 0, 0, 0), True)], 3, (0.0, 1.0)),
    "two convs, flatten, dense": ((12, 10, 3), [(6, (3, 3), (2, 2), (1, 1, 1, 1), True),
                                                (8, (3, 3), (1, 1), (1, 0, 1, 0), True)], 5, (0.0, 1.0)),
    "conv last": ((8, 9, 3), [(5, (3, 3), (1, 2), (1, 1, 1, 1), True), (7, (1, 3), (1, 1), (0, 0, 1, 1), False)],
                  None, (0.0, 1.0)),
    "wide kernel, tiny output": ((7, 7, 6), [(7, (5, 5), (2, 2), (0, 0, 0, 0), True)], 3, (-0.5, 1.0)),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("budget", [None, "min"])
def test_int8_conv_bit_exact(tmp_path, case, budget):
    """Whole layers in one tile (no budget) and the smallest budget udx accepts."""
    shape, convs, classes, (lo, hi) = CASES[case]
    g, x = int8_model(shape, convs, classes, lo, hi, seed=len(case))
    assert [layer.kind for layer in g.layers] == ["conv2d"] * len(convs) + (["dense"] if classes else [])
    plan = ram.plan(g)
    run = run_exact(tmp_path, g, x, plan["min_budget"] if budget == "min" else budget)
    assert run.stats["budget_bytes"] == plan["min_budget" if budget == "min" else "default_budget"]


# (case, extra bytes over min_budget, channels per tile expected in each conv): one-channel tiles, and tiles that do
# not divide the channel count (the last tile shorter), including a dense layer after a tiled conv
TILINGS = [
    ("conv last", 0, [1, 1]),                       # rows 35 and 23 bytes: scratch 35
    ("conv last", 37, [2, 3]),                      # scratch 72: 5 = 2+2+1, 7 = 3+3+1
    ("conv last", 3 * 35 + 11, [4, 6]),             # scratch 151: 5 = 4+1, 7 = 6+1
    ("wide kernel, tiny output", 0, [1]),           # row 158 > the dense row 36
    ("wide kernel, tiny output", 2 * 158 + 5, [3]),   # 7 = 3+3+1
    ("5x3 stride (2, 1) pad (1, 1, 0, 2)", 1, [4]),   # a dense row (5*7*5+8 bytes) holds 4 conv rows: 5 = 4+1
]


@pytest.mark.parametrize("case,extra,tiles", TILINGS)
def test_int8_conv_tiles(tmp_path, case, extra, tiles):
    shape, convs, classes, (lo, hi) = CASES[case]
    g, x = int8_model(shape, convs, classes, lo, hi, seed=len(case))
    budget = ram.plan(g)["min_budget"] + extra
    assert conv_tiles(g, budget) == tiles
    run = run_exact(tmp_path, g, x, budget)
    assert run.stats["budget_bytes"] <= budget
    if extra == 0:   # microdx.ram's min_budget is exactly udx's smallest: one byte less is refused
        with pytest.raises(errors.DeviceError, match="short by 1 bytes") as e:
            emulator.run(tmp_path / "m.dxb", x[:1], heap=HEAP, budget=budget - 1)
        assert e.value.kind == "BudgetError"


def test_padding_holds_the_input_zero_point(tmp_path):
    """With inputs in [0, 1] the input zero point is -128: padded cells must count as -128, not 0. The reference
    with in_zero = 0 would differ, so the device's equality is a real check of the border arithmetic."""
    shape, convs, classes, _ = CASES["3x3 stride 2 SAME (pad bottom/right only)"]
    g, x = int8_model(shape, convs, classes)
    assert g.layers[0].attrs["in_zero"] == -128
    run_exact(tmp_path, g, x, None)
    zero = copy.deepcopy(g)
    zero.layers[0].attrs["in_zero"] = 0
    assert not np.array_equal(reference.run(zero, x), reference.run(g, x))


F32_CASES = ["5x3 stride (2, 1) pad (1, 1, 0, 2)", "two convs, flatten, dense", "conv last"]


@pytest.mark.parametrize("case", F32_CASES)
@pytest.mark.parametrize("budget", [None, "min", "min+odd"])
def test_float32_conv_matches_to_tolerance(tmp_path, case, budget):
    shape, convs, classes, (lo, hi) = CASES[case]
    g = cnn(shape, convs, classes, seed=3)
    assert g.dtype == "f32"
    p = ram.plan(g)
    b = {None: None, "min": p["min_budget"], "min+odd": p["min_budget"] + 2 * 115 + 1}[budget]
    if case == "conv last" and budget:      # f32 rows 112 and 64 bytes; scratch 112, then 227: 5 = 2+2+1, 7 = 3+3+1
        assert conv_tiles(g, b) == ([1, 1] if budget == "min" else [2, 3])
    x = np.random.default_rng(4).uniform(lo, hi, size=(10, math.prod(shape))).astype(np.float32)
    x[0] = -1.0                              # a constant input: padding (0.0) differs from every real cell
    blob = write_blob(tmp_path / "f.dxb", g)
    # the tolerance checked here does not depend on the heap, so every case gets twice HEAP: udx's default budget
    # gives this float model 12 KB of float buffers, and beside udx's 28 KB of code the smallest heap that runs it is
    # about 67.5 KB on the 64-bit unix port (measured at a fixed executable path, microdx.emulator.
    # measuring_micropython); at the smallest budget 68.4 KB since opening it starts a fifth string pool of the
    # interpreter's (3.9 KB: the names udx interns crossed its last pool's size by 3 when in-place reads came)
    run = emulator.run(blob, x, heap=2 * HEAP, budget=b)
    assert run.outputs.dtype == np.float32
    np.testing.assert_allclose(run.outputs, reference.run(g, x), rtol=1e-5, atol=1e-5)


# Peak heap of both models below at BUDGET (bytes, 64-bit unix port): udx's code with the conv kernel and its native
# twin, the parsed header, the layer plans and the buffers the budget caps (the 8-channel model's layers fit whole,
# so the layer cache keeps them resident inside the budget). Measured 41,216 (8 channels, 5,270 of buffers) and
# 41,408 (64 channels, 5,400: the whole budget); 41,376 before the emulator's runner gained its audio path, whose
# names shift where the interpreter's string pool grows by a few blocks; 42,048 and 42,2xx since udx can use a
# memory-mapped blob's weights in place (udx.inplace: the planning code that asks each layer, and tiles that pad their
# weights to 4 bytes, add about 500 bytes to `import udx` and 300 to the open). The ceiling leaves about 750 bytes.
BUDGET = 5400
PEAK_CEILING = 43_000


def test_peak_heap_does_not_grow_with_output_channels(tmp_path):
    """16x16x4 input, 3x3 conv at stride 4 (4x4xN: at most the input's 1,024 values), flatten, dense: 8 then 64
    output channels at one budget. The 64-channel conv streams in tiles through the same scratch (29 + 29 + 6
    channels), so the heap stays under one ceiling and nothing but the buffers differs."""
    peaks = {}
    for out in (8, 64):
        g, x = int8_model((16, 16, 4), [(out, (3, 3), (4, 4), (1, 1, 1, 1), True)], 3, seed=out)
        run = run_exact(tmp_path, g, x[:4], BUDGET)
        peaks[out] = (run.stats["peak_heap_bytes"], run.stats["budget_bytes"])
    assert conv_tiles(g, BUDGET) == [29]
    print("conv peak heap (peak bytes, budget bytes) by output channels:", peaks)
    assert peaks[64][0] <= PEAK_CEILING and peaks[8][0] <= PEAK_CEILING, peaks
    # beyond the buffers, the 64-channel model costs no more heap than the 8-channel one but the views of its last,
    # shorter tile (three memoryviews, made once at open: 166 bytes measured)
    assert peaks[64][0] - peaks[64][1] <= peaks[8][0] - peaks[8][1] + 256, peaks


ALLOCATED = """
import gc, sys, array, udx
for path in sys.argv[1:]:
    m = udx.Model(path)
    x = array.array("b", bytes(m.n_in))
    m.predict(x)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    m.predict(x)
    print(gc.mem_alloc() - before)
    gc.enable()
    m.close()
"""


def test_int8_inference_allocates_per_tile_not_per_pixel(tmp_path):
    """Heap allocated by one int8 inference (gc off) is the same for 6x6, 12x12 and 24x24 images through two 3x3
    convs, each in one tile: the pixel and MAC loops allocate nothing (only a few memoryviews per tile do)."""
    paths = []
    for side in (6, 12, 24):
        g, _ = int8_model((side, side, 3), [(6, (3, 3), (1, 1), (1, 1, 1, 1), True),
                                            (5, (3, 3), (2, 1), (1, 1, 1, 1), False)])
        paths.append(write_blob(tmp_path / f"s{side}.dxb", g))
    allocated = run_mpy(ALLOCATED, tmp_path, heap=1 << 20, args=paths)
    assert len(set(allocated)) == 1 and allocated[0] < 1024, allocated


@pytest.fixture(scope="module")
def good_conv():
    g, _ = int8_model((9, 8, 3), [(6, (3, 3), (2, 1), (1, 1, 0, 2), True)], 4)
    return blob_writer.pack(g)


def _conv_entry(h):
    return h["layers"][0]


def _out_dim(i, value):
    """Set dim i of the conv's out shape, and of the next layer's in shape so that the chain still holds."""
    def mutate(h):
        h["layers"][0]["out"][i] = h["layers"][1]["in"][i] = value
    return mutate


BAD_HEADERS = {   # name -> (mutate the header, host and device message fragment); the good conv is 9x8x3 -> 5x8x6
    "wrong out shape": (_out_dim(0, 6), "layer 0"),
    "wrong out channels": (_out_dim(2, 5), "layer 0"),     # the shapes agree; the weight tensor has 6 channels
    "pad >= kernel": (lambda h: _conv_entry(h).update(pad=[3, 1, 0, 2]), "must be smaller than the kernel"),
    "missing stride": (lambda h: _conv_entry(h).pop("stride"), "'stride'"),
    "missing kernel": (lambda h: _conv_entry(h).pop("kernel"), "'kernel'"),
    "stride 0": (lambda h: _conv_entry(h).update(stride=[0, 1]), "stride"),
    "pad of 3 values": (lambda h: _conv_entry(h).update(pad=[1, 1, 0]), "pad"),
    "kernel not ints": (lambda h: _conv_entry(h).update(kernel=[3.0, 3]), "kernel"),
    "in_zero out of range": (lambda h: _conv_entry(h).update(in_zero=200), "in_zero"),
    "missing in_zero": (lambda h: _conv_entry(h).pop("in_zero"), "in_zero"),
    "2-D in": (lambda h: (_conv_entry(h).update({"in": [72, 3]}), h["input"].update(shape=[72, 3])), "layer 0"),
}


def test_bad_conv_headers_are_refused_by_device_and_host(good_conv, tmp_path):
    paths = []
    for i, (name, (mutate, _)) in enumerate(BAD_HEADERS.items()):
        data = rewrite_header(good_conv, mutate)
        with pytest.raises(errors.FormatError) as host_err:
            blob_reader.parse(data)
        assert BAD_HEADERS[name][1] in str(host_err.value), (name, str(host_err.value))
        (tmp_path / f"bad{i}.dxb").write_bytes(data)
        paths.append(tmp_path / f"bad{i}.dxb")
        with pytest.raises(errors.FormatError):
            blob_reader.read(paths[-1])
    device = open_each(paths, tmp_path, HEAP)
    assert len(device) == len(BAD_HEADERS)
    for name, dev in zip(BAD_HEADERS, device):
        assert dev.get("error") == "FormatError", (name, dev)
        assert BAD_HEADERS[name][1] in dev["message"] and "layer 0" in dev["message"], (name, dev)
    # the unchanged blob opens on both
    (tmp_path / "good.dxb").write_bytes(good_conv)
    assert "ok" in open_each([tmp_path / "good.dxb"], tmp_path, HEAP)[0]
    blob_reader.parse(good_conv)


def test_huge_conv_activation_is_refused_without_allocating(good_conv, tmp_path):
    """A conv's weights do not bound its activations (a dense layer's do): a header claiming a 2048x2048x3 input
    must give a FormatError on a small heap (48 KB: far less than the 12 MB it claims), not a MemoryError (nor,
    on a 32-bit board, a long-int overflow)."""
    def mutate(h):
        h["input"]["shape"] = [2048, 2048, 3]
        e = _conv_entry(h)
        e.update({"in": [2048, 2048, 3], "out": [1024, 2048, 6]})   # consistent with kernel 3x3, stride 2x1, pad
    p = tmp_path / "huge.dxb"
    p.write_bytes(rewrite_header(good_conv, mutate))
    out = open_each([p], tmp_path, 48 * 1024)   # udx, udx.conv2d and the snippet take about 32 KB of it
    assert out[0].get("error") == "FormatError" and "more than 1048576 elements" in out[0]["message"], out
    with pytest.raises(errors.FormatError, match="more than 1048576 elements"):   # the host reader agrees
        blob_reader.read(p)


def test_activations_larger_than_the_free_heap_are_refused_before_allocating(tmp_path):
    """A legitimate conv model whose feature maps cannot fit the heap: udx says so with the numbers before it
    allocates (a MemoryError, which the emulator then explains against the board's heap)."""
    rng = np.random.default_rng(61)
    g = canonicalize("big", (160, 160, 3), [("conv2d", "c", {"w": rng.normal(size=(4, 3, 3, 3)) / 5,
                                                              "b": np.zeros(4), "pad": np.array([1, 1, 1, 1])}),
                                             ("relu", "r", {})])
    q, _ = quantize_graph(g, rng.normal(size=(4, 160, 160, 3)))
    blob_writer.write(q, tmp_path / "big.dxb")
    with pytest.raises(emulator.DeviceError) as e:
        emulator.run(tmp_path / "big.dxb", np.zeros((1, 160 * 160 * 3), np.int8), heap=96 * 1024)
    assert e.value.kind == "MemoryError" and "heap 98,304 bytes is too small" in str(e.value), str(e.value)
    out = run_mpy("import udx\ntry:\n    udx.Model(%r)\nexcept MemoryError as e:\n    print(e)\n"
                  % str(tmp_path / "big.dxb"), tmp_path, heap=96 * 1024)
    # one-row tile: 27 weights padded to 28 (udx.dense.tile_bytes), a bias and a multiplier
    assert out[0].startswith("model needs 307340 bytes of buffers (activations 307200 + scratch 140) but the heap "
                             "has ") and "even one-row tiles need 307236: use a board with more heap" in out[0], out
