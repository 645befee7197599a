"""Blob format v1: round trip, determinism, alignment, the golden blob (host and device), docs example."""
import re
import struct
from pathlib import Path

import numpy as np


from microdx.synthetic import random_int8
from microdx import blob_reader, blob_writer, data, emulator, reference
from microdx.blob_format import PREAMBLE, PREAMBLE_SIZE
from microdx.importers import npz
from microdx.quantize import quantize_graph

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).parents[1] / "docs" / "format.md"


def test_round_trip_keeps_every_tensor_and_attr():
    g, _ = random_int8([10, 7, 3], seed=5)
    back = blob_reader.parse(blob_writer.pack(g)).graph
    assert back.input_q == g.input_q and back.output_q == g.output_q and back.post == g.post
    for a, b in zip(g.layers, back.layers):
        assert (a.kind, a.name, a.dtype, a.attrs) == (b.kind, b.name, b.dtype, b.attrs)
        for k in a.tensors:
            assert a.tensors[k].dtype == b.tensors[k].dtype and np.array_equal(a.tensors[k], b.tensors[k])


def test_packing_is_deterministic_and_aligned():
    g, _ = random_int8([13, 9, 5], seed=6)
    raw = blob_writer.pack(g)
    assert raw == blob_writer.pack(g)
    blob = blob_reader.parse(raw)
    for e in blob.header["layers"]:
        assert e["off"] % 4 == 0 and e["len"] % 4 == 0
    _, _, _, _, hlen, _ = struct.unpack_from(PREAMBLE, raw)
    assert blob.header["layers"][0]["off"] == (PREAMBLE_SIZE + hlen + 3) // 4 * 4


def _golden_graph():
    return quantize_graph(npz.load(GOLDEN / "tiny_model.npz"), data.load(GOLDEN / "tiny_calib.npz")[0])[0]


def test_packer_reproduces_golden_blob():
    """A format change must be deliberate: regenerate with tools/make_golden.py and bump the version."""
    assert blob_writer.pack(_golden_graph()) == (GOLDEN / "tiny_i8.dxb").read_bytes()


def test_golden_blob_outputs_on_host_and_device():
    exp = np.load(GOLDEN / "tiny_expected.npz")
    graph = blob_reader.read(GOLDEN / "tiny_i8.dxb").graph
    assert np.array_equal(reference.run(graph, exp["x"]), exp["out"])
    run = emulator.run(GOLDEN / "tiny_i8.dxb", exp["x"], board="unix", heap=64 * 1024)
    assert np.array_equal(run.outputs, exp["out"])


def test_docs_byte_example_matches_golden_blob():
    block = re.search(r"```text\n(00000000:.*?)```", DOCS.read_text(), re.S).group(1)
    doc_bytes = bytes.fromhex("".join(line.split(":")[1].split("  ")[0] for line in block.strip().splitlines()))
    assert len(doc_bytes) >= 64
    assert (GOLDEN / "tiny_i8.dxb").read_bytes().startswith(doc_bytes)


def test_host_and_device_agree_on_the_layer_kinds_and_every_kernel_class_exists():
    """blob_format.KIND_DTYPES (what the writer may emit) and device/udx/plan.py KERNELS have the same kinds, and
    every (kind, dtype) maps to a module that names its class kind_dtype."""
    import ast

    from microdx.blob_format import KIND_DTYPES

    udx = Path(__file__).parents[1] / "device" / "udx"
    tree = ast.parse((udx / "plan.py").read_text())
    kernels = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", None) == "KERNELS")
    table = dict(zip(kernels[::2], kernels[1::2]))
    assert {k.split("/")[0] for k in table} == {kind for kind, _ in KIND_DTYPES}
    for kind, dtype in KIND_DTYPES:   # the module a pair maps to names its class kind_dtype (an alias of a class)
        module = table.get(f"{kind}/{dtype}") or table[kind]
        body = ast.parse((udx / (module.split(".")[1] + ".py")).read_text()).body
        classes = {n.name for n in body if isinstance(n, ast.ClassDef)}
        aliases = {n.targets[0].id: n.value.id for n in body if isinstance(n, ast.Assign)
                   and isinstance(n.value, ast.Name)}
        assert aliases.get(f"{kind}_{dtype}") in classes, (kind, dtype, module)
