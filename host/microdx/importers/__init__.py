"""Model importers: file -> float Graph. One module per format; `load` picks one by file extension."""
from __future__ import annotations

from pathlib import Path

from microdx.errors import MicrodxError, ModelFileError
from microdx.ir import Graph


def load(path) -> Graph:
    """Import the model at `path` (.npz, .onnx or a float .tflite) as a float Graph (raw: run the clean pass before
    quantizing)."""
    if Path(path).is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        from microdx.importers import npz
        return npz.load(path)
    if suffix == ".onnx":
        from microdx.importers import onnx_import
        return onnx_import.load(path)
    if suffix == ".tflite":
        from microdx.importers import tflite
        return tflite.load(path)
    raise MicrodxError(f"cannot import '{path}': supported model files are .npz, .onnx and .tflite")
