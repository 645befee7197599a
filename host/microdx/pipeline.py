"""The jobs behind the CLI: convert a model to a blob, evaluate a blob on the host reference and the emulated board."""
from __future__ import annotations

import numpy as np

from microdx import blob_reader, blob_writer, data, emulator, importers, reference
from microdx.errors import QuantizationError
from microdx.quantize import quantize_graph


def float_bytes(graph) -> int:
    """Bytes of the model's weights stored as float32."""
    return sum(4 * t.size for layer in graph.layers for t in layer.tensors.values())


def convert(src, out, calib=None, use_float: bool = False) -> dict:
    """Import `src`, quantize to int8 (calibrated on the `calib` data file) unless `use_float`, write `out`.

    Returns a report: blob_bytes, float32_bytes, compression, notes and, when the calibration data has
    labels, accuracy of the float model and of the converted model on that data.
    """
    graph = importers.load(src)
    notes = []
    x = y = None
    if calib is not None:
        x, y = data.load(calib)
    if use_float:
        result = graph
    else:
        if x is None:
            raise QuantizationError("int8 conversion needs representative inputs: --calib DATA.npz (or --float)")
        result, notes = quantize_graph(graph, x)
    size = blob_writer.write(result, out)
    report = {"model": graph.name, "dtype": result.dtype, "blob_bytes": size, "float32_bytes": float_bytes(graph),
              "compression": round(float_bytes(graph) / size, 2), "notes": notes}
    if y is not None:
        report["float_accuracy_calib"] = reference.accuracy(reference.run_float(graph, x), y)
        report["accuracy_calib"] = reference.accuracy(reference.run(result, x), y)
    return report


def evaluate(blob_path, x, y, device: bool = False, board: str = "rp2040", heap: int | None = None) -> dict:
    """Accuracy of the blob on (x, y) with the host reference and, if `device`, on the emulated board.

    mismatches: rows whose device output differs from the reference at all (int8: must be 0);
    for float blobs also max_abs_diff (floats are single precision on MCUs, double on the unix port).
    """
    blob = blob_reader.read(blob_path)
    graph = blob.graph
    xin = reference.prepare_input(graph, x)
    ref = reference.run(graph, xin)
    report = {"model": graph.name, "dtype": graph.dtype, "count": int(len(xin)), "blob_bytes": blob.size}
    if y is not None:
        report["accuracy"] = reference.accuracy(ref, y)
    if device:
        run = emulator.run(blob_path, xin, board=board, heap=heap)
        report["mismatches"] = int(np.sum(np.any(run.outputs != ref, axis=1)))
        if graph.dtype == "f32":
            report["max_abs_diff"] = float(np.max(np.abs(run.outputs - ref)))
        if y is not None:
            report["device_accuracy"] = reference.accuracy(run.outputs, y)
        report.update({k: run.stats[k] for k in ("runtime_heap_bytes", "peak_heap_bytes", "wall_s", "budget_bytes",
                                                 "board", "heap_bytes")})
    return report
