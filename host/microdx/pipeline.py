"""The jobs behind the CLI: convert a model to a blob, run a blob and evaluate it on the host reference and the
emulated board. Data files arrive as microdx.data.Data: x real values, x_q int8 codes, or pcm audio for blobs that
carry an audio front-end (microdx.audio: the device's integer features, computed on the host for the reference and on
the device itself when it runs)."""
from __future__ import annotations

import os

import numpy as np

from microdx import audio, blob_reader, blob_writer, data, emulator, fit, importers, reference
from microdx.errors import DataFileError, FormatError, InputShapeError, QuantizationError
from microdx.features import fixed_mfcc
from microdx.ir import layer_shapes
from microdx.quantize import float_graph, quantize_graph


def float_bytes(graph) -> int:
    """Bytes of the model's weights stored as float32."""
    return sum(4 * t.size for layer in graph.layers for t in layer.tensors.values())


def read_blob(path) -> blob_reader.Blob:
    """blob_reader.read, with the file named in its errors."""
    try:
        return blob_reader.read(path)
    except FormatError as e:
        raise type(e)(f"{path}: {e}") from None


def n_outputs(graph) -> int:
    return layer_shapes(graph)[-1][1][0]


def model_input(graph, d: data.Data) -> np.ndarray:
    """The rows of `d` in the graph's device dtype: x quantized (int8 graphs) or as float32; x_q as it is; for a
    graph with an audio front-end, pcm through it and x (features) through its int8 mapping (microdx.audio)."""
    rows = d.rows
    if d.pcm is not None and graph.frontend is None:
        raise DataFileError(f"{d.path} holds audio (pcm) but the blob has no audio front-end: give features (x), or "
                            f"convert the model with --frontend mfcc")
    if graph.frontend is not None and d.x_q is None:
        if d.x is not None and rows.shape[1] != graph.input_size:
            raise InputShapeError(f"{d.path}: x has {rows.shape[1]} features per row; the model expects "
                                  f"{graph.input_size}")
        return audio.inputs(graph, d)
    if rows.shape[1] != graph.input_size:
        raise InputShapeError(f"{d.path}: {d.key} has {rows.shape[1]} features per row; the model expects "
                              f"{graph.input_size}")
    if d.x_q is None:
        return reference.prepare_input(graph, d.x)
    if graph.dtype != "i8":
        raise DataFileError(f"{d.path} holds x_q (int8 codes) but the blob is float32: store real values under 'x'")
    return d.x_q


def _accuracy(outputs, d: data.Data, graph) -> tuple[float | None, str]:
    """(accuracy, how y was read) or (None, why there is none)."""
    if d.y is None:
        return None, f"no labels: {d.path} has no 'y' array"
    y, how = data.class_indices(d.y, graph.labels, n_outputs(graph), d.path)
    return reference.accuracy(outputs, y), how


def convert(src, out, calib=None, use_float: bool = False, recipe: str | None = None,
            frontend: str | None = None, labels=None) -> dict:
    """Import `src`, fold its scale/shift layers (clean pass), apply the optimizer `recipe` (see
    microdx.optimizers.parse_recipe), quantize to int8 (calibrated on the `calib` data: a data file path or
    microdx.data.Data) unless `use_float`, write `out`. `frontend` (e.g. "mfcc", see microdx.audio.parse) packs
    the audio front-end the model's inputs come from into the blob: the model then takes x = Q8 MFCCs / 256 (log2
    units), and calibration data may hold pcm audio instead. `labels` (class names, one per output) replace the
    model's own (an ONNX file carries none).

    Returns a report: blob_bytes, float32_bytes, compression, notes and, when the calibration data has
    labels, accuracy of the float model and of the converted model on that data.
    """
    from microdx.optimizers import get, parse_recipe

    steps = parse_recipe(recipe) if recipe else []     # a bad recipe fails before any work
    if calib is not None and not isinstance(calib, data.Data):
        calib = data.load(calib)
    imported = importers.load(src)
    if imported.dtype == "i8":   # an int8 .tflite: TFLite's own quantization, kept as it is
        if frontend:
            raise QuantizationError(f"{src} is an int8 model: --frontend needs the float model (the front-end's "
                                    f"feature mapping is set from microdx's calibration of the input)")
        return _convert_integer(imported, src, out, calib, use_float, recipe)
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != n_outputs(imported):
            raise DataFileError(f"{len(labels)} labels given; the model has {n_outputs(imported)} outputs")
        imported = imported.copy(labels=labels)
    front = audio.parse(frontend, imported.input_size) if frontend else None
    if front and use_float:
        raise QuantizationError("--frontend takes int8 models: the device's integer features map to the int8 "
                                "input; drop --float")
    if calib is not None and calib.pcm is not None:
        if not front:
            raise DataFileError(f"{calib.path} holds audio (pcm): calibrating on audio needs --frontend")
        entry = fixed_mfcc.entry(*front)
        if calib.rate is not None and calib.rate != entry["rate"]:
            raise DataFileError(f"{calib.path}: audio at {calib.rate} Hz; the front-end takes {entry['rate']} Hz")
        calib = data.Data(calib.path, audio.features(calib.pcm, entry) / 256.0, None, calib.y)
    cleaned = get("clean").apply(imported)
    source, notes, reports = cleaned.graph, list(cleaned.report["notes"]), []
    graph = source
    for step in steps:
        if getattr(step, "needs_data", False):   # e.g. finetune: trains on the calibration data and its labels
            if calib is None or calib.x is None or not data.is_class_labels(calib.y):
                why = "no --calib given" if calib is None else \
                    f"{calib.path} has {'no real-valued x' if calib.x is None else 'no class labels y'}"
                raise DataFileError(f"recipe step '{step.name}' needs labelled training data ({why}): give "
                                    f"--calib TRAIN.npz with real-valued x and class labels y")
            y, _ = data.class_indices(calib.y, graph.labels, n_outputs(graph), calib.path)
            done = step.apply(graph, data=(calib.x, y))
        else:
            done = step.apply(graph)
        graph, notes, reports = done.graph, notes + done.report["notes"], reports + [done.report]
    graph = graph.copy(recipe=recipe or "")
    if calib is not None and calib.x is None:
        raise DataFileError(f"{calib.path} holds x_q (int8 codes): calibration needs the real values, as 'x'")
    if calib is not None and calib.x.shape[1] != graph.input_size:
        raise InputShapeError(f"{calib.path}: x has {calib.x.shape[1]} features per row; the model expects "
                              f"{graph.input_size}")
    if use_float:
        result = float_graph(graph)
    else:
        if calib is None:
            raise QuantizationError("int8 conversion needs representative inputs: --calib DATA.npz (or --float)")
        result, qnotes = quantize_graph(graph, calib.x)
        notes += qnotes
        if front:
            try:
                result = result.copy(frontend=fixed_mfcc.spec(front[0], front[1], *result.input_q))
            except ValueError as e:
                raise QuantizationError(f"--frontend: {e}") from None
    size = blob_writer.write(result, out)
    report = {"model": graph.name, "dtype": result.dtype, "blob_bytes": size, "float32_bytes": float_bytes(source),
              "compression": round(float_bytes(source) / size, 2), "notes": notes}
    if recipe:
        report.update(recipe=recipe, optimizers=reports)
    if calib is not None and data.is_class_labels(calib.y):   # float y: a regression target, no accuracy
        float_acc, report["labels_as"] = _accuracy(reference.run_float(source, calib.x), calib, graph)
        report["float_accuracy_calib"] = float_acc
        if recipe:   # the optimizers' own cost, before quantization
            report["optimized_float_accuracy_calib"] = _accuracy(reference.run_float(graph, calib.x), calib, graph)[0]
        report["accuracy_calib"] = _accuracy(reference.run(result, model_input(result, calib)), calib, graph)[0]
    return report


def _convert_integer(graph, src, out, calib, use_float: bool, recipe: str | None) -> dict:
    """convert() of a model that is integer already (an int8 .tflite): packed as it is, so the device computes
    exactly TFLite's integers; the optimizers and --float need the float model."""
    if use_float or recipe:
        raise QuantizationError(f"{src} is an int8 model: microdx keeps its quantization as it is, so "
                                f"{'--float' if use_float else 'a recipe'} cannot apply; convert the float .tflite "
                                f"(or its ONNX / Keras source) to use microdx's optimizers or a float blob")
    if calib is not None and calib.rows.shape[1] != graph.input_size:
        raise InputShapeError(f"{calib.path}: {calib.key} has {calib.rows.shape[1]} features per row; the model "
                              f"expects {graph.input_size}")
    size = blob_writer.write(graph, out)
    source_bytes = os.path.getsize(src)
    report = {"model": graph.name, "dtype": "i8", "blob_bytes": size, "source_bytes": source_bytes,
              "compression": round(source_bytes / size, 2),
              "notes": ["int8 .tflite: its own quantization and TFLite's integer arithmetic are kept (no calibration)"]}
    if calib is not None and data.is_class_labels(calib.y):
        report["accuracy_calib"], report["labels_as"] = _accuracy(reference.run(graph, model_input(graph, calib)),
                                                                  calib, graph)
    return report


def convert_to_fit(src, out, board: str, max_loss: float, d: data.Data, calib: data.Data | None = None,
                   progress=None) -> dict:
    """Import and clean `src`, then let microdx.autofit choose the recipe that fits `board`'s flash with at most
    `max_loss` points of accuracy lost on `d` (int8 host reference); int8 calibrated on `calib` (default `d`).
    Writes `out`; returns the report of `convert` plus recipe, loss_points and the baseline accuracy."""
    from microdx.autofit import autofit
    from microdx.optimizers import get

    if d.x is None or d.y is None:
        raise DataFileError(f"{d.path}: auto-fit scores recipes on real-valued x with labels y")
    source = get("clean").apply(importers.load(src)).graph
    calib = calib or d
    for what in (d, calib):
        if what.x is None or what.x.shape[1] != source.input_size:
            raise InputShapeError(f"{what.path}: needs x with {source.input_size} features per row")
    y, how = data.class_indices(d.y, source.labels, n_outputs(source), d.path)
    r = autofit(source, board, calib.x, d.x, y, max_loss, progress=progress)
    size = blob_writer.write(r["graph"], out)
    return {"model": source.name, "dtype": "i8", "blob_bytes": size, "float32_bytes": float_bytes(source),
            "compression": round(float_bytes(source) / size, 2), "recipe": r["recipe"] or None,
            "accuracy": r["accuracy"], "baseline_int8_accuracy": r["baseline_accuracy"],
            "loss_points": r["loss_points"], "flash_allowance_bytes": r["allowance_bytes"],
            "recipes_measured": r["tried"], "labels_as": how, "notes": []}


def run(blob_path, d: data.Data, board: str = "rp2040", heap: int | None = None, budget: int | None = None,
        ignore_flash: bool = False, progress=None) -> dict:
    """Outputs of the blob on the emulated board for every row of `d`, with the device's heap and time figures."""
    graph = read_blob(blob_path).graph
    if not ignore_flash:
        fit.require_flash(blob_path, board)
    xin = model_input(graph, d)
    dev = emulator.run(blob_path, _device_input(graph, d, xin), board=board, heap=heap, budget=budget,
                       progress=progress)
    predictions = [int(v) for v in dev.outputs.argmax(axis=1)]
    report = {"model": graph.name, "data": d.path, "input": d.key, "outputs": dev.outputs.tolist(),
              "predictions": predictions, **dev.stats}
    if graph.labels:
        report["predicted_labels"] = [graph.labels[i] if i < len(graph.labels) else str(i) for i in predictions]
    return report


def _device_input(graph, d: data.Data, xin: np.ndarray) -> np.ndarray:
    """What the emulated board is given: audio when the data holds it (the device's front-end computes the features,
    so device == host checks the front-end too), else the model's inputs `xin`."""
    return xin if d.pcm is None else audio.pcm_rows(d.pcm, graph.frontend)


def evaluate(blob_path, d, y=None, device: bool = False, board: str = "rp2040", heap: int | None = None,
             budget: int | None = None, source=None, ignore_flash: bool = False, progress=None) -> dict:
    """Accuracy of the blob on data `d` (microdx.data.Data, or real-valued features x with labels `y`) with the
    host reference and, if `device`, on the emulated board.

    mismatches: rows whose device output differs from the reference at all (int8: must be 0);
    for float blobs also max_abs_diff (floats are single precision on MCUs, double on the unix port).
    source: the float model file the blob came from: float_accuracy and accuracy_drop_points (float - host).
    accuracy is None (with accuracy_note) when the data has no labels.
    """
    if not isinstance(d, data.Data):
        d = data.from_arrays(d, y)
    blob = read_blob(blob_path)
    if device and not ignore_flash:
        fit.require_flash(blob_path, board)
    graph = blob.graph
    xin = model_input(graph, d)
    ref = reference.run(graph, xin)
    report = {"model": graph.name, "dtype": graph.dtype, "data": d.path, "input": d.key, "count": int(len(xin)),
              "blob_bytes": blob.size}
    report["accuracy"], how = _accuracy(ref, d, graph)
    report["labels_as" if d.y is not None else "accuracy_note"] = how
    if source is not None:
        report.update(_float_accuracy(source, d, graph, report["accuracy"]))
    if device:
        dev = emulator.run(blob_path, _device_input(graph, d, xin), board=board, heap=heap, budget=budget,
                           progress=progress)
        report["mismatches"] = int(np.sum(np.any(dev.outputs != ref, axis=1)))
        if graph.dtype == "f32":
            with np.errstate(invalid="ignore"):   # Inf - Inf: reported below as not comparable
                diff = np.abs(dev.outputs.astype(np.float64) - ref)
            report["max_abs_diff"] = float(diff.max()) if np.isfinite(diff).all() else None
            if report["max_abs_diff"] is None:
                report["max_abs_diff_note"] = "the outputs hold NaN or Inf (float overflow): not comparable"
        report["device_accuracy"] = _accuracy(dev.outputs, d, graph)[0]
        report.update({k: dev.stats[k] for k in ("runtime_heap_bytes", "peak_heap_bytes", "wall_s", "budget_bytes",
                                                 "board", "heap_bytes")})
    return report


def _float_accuracy(source, d: data.Data, graph, accuracy) -> dict:
    """float_accuracy of the float model `source` on `d` and the drop to `accuracy` in percentage points."""
    if d.x is None:
        raise DataFileError(f"{d.path} holds x_q (int8 codes): --source runs the float model, which needs the real "
                            f"values as 'x'")
    src = importers.load(source)
    if src.input_size != d.x.shape[1]:
        raise InputShapeError(f"--source {source} takes {src.input_size} features, {d.path} has {d.x.shape[1]}: "
                              f"not the model this blob came from?")
    float_acc, _ = _accuracy(reference.run_float(src, d.x), d, graph)
    if float_acc is None or accuracy is None:
        return {"float_accuracy": float_acc, "accuracy_drop_points": None,
                "float_accuracy_note": f"no labels: {d.path} has no 'y' array"}
    return {"float_accuracy": float_acc, "accuracy_drop_points": round(100 * (float_acc - accuracy), 2)}
