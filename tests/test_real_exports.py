"""Models exported the way users export them (tests/fixtures/onnx, made by tools/make_import_fixtures.py) convert:
float blobs give onnxruntime's numbers, int8 blobs keep the source model's accuracy on held-out digits within 1.5
points, and the emulated board (MicroPython unix port, rp2040 heap) gives the host reference's integers."""
import json
from pathlib import Path

import numpy as np
import pytest

from microdx import blob_reader, data, pipeline, reference

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
ort = pytest.importorskip("onnxruntime")


def digits_split():
    """The split of tools/make_import_fixtures.py: digits pixels (0..16) as float32, stratified 70/30."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)


def source_scores(path, x, entry):
    """onnxruntime's class scores (probabilities or logits, one column per class) and its predicted classes."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    scores = outs[-1]
    if isinstance(scores, list):              # ZipMap: one {class: probability} dict per row
        scores = np.array([[row[c] for c in entry["labels"]] for row in scores])
    labels = np.asarray(entry["labels"]) if entry["labels"] else np.arange(scores.shape[1])
    predicted = np.asarray(outs[0]).reshape(-1) if len(outs) > 1 else labels[scores.argmax(axis=1)]
    return np.asarray(scores, dtype=np.float64), predicted


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def split():
    return digits_split()


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_export_converts_float_exact_and_int8_within_1_5_points(name, split, tmp_path):
    entry = MANIFEST[name]
    src = FIXTURES / name
    x_tr, x_te, y_tr, y_te = split
    if entry["scaling"] == "div16":
        x_tr, x_te = x_tr / 16.0, x_te / 16.0
    truth = y_te * 2 + 1 if entry["labels"] and entry["labels"][0] == 1 else y_te   # classes as trained
    scores, predicted = source_scores(src, x_te.astype(np.float32), entry)
    source_acc = float(np.mean(predicted == truth))
    assert round(source_acc, 4) == entry["onnxruntime_test_accuracy"]   # the committed fixture is the one measured

    # float32 blob: onnxruntime's numbers (softmax applied on the host where the model ends in one)
    pipeline.convert(src, tmp_path / "f.dxb", use_float=True)
    g = blob_reader.read(tmp_path / "f.dxb").graph
    assert g.labels == [str(c) for c in entry["labels"]]
    out = reference.run(g, x_te).astype(np.float64)
    np.testing.assert_allclose(softmax(out) if g.post == "softmax" else out, scores, atol=1e-4, rtol=1e-4)

    # int8 blob, calibrated on the training split; test labels given as the model's class values
    data.save(tmp_path / "train.npz", x_tr, y_tr * 2 + 1 if truth is not y_te else y_tr)
    data.save(tmp_path / "test.npz", x_te, truth)
    conv = pipeline.convert(src, tmp_path / "q.dxb", calib=tmp_path / "train.npz")
    assert conv["dtype"] == "i8"
    r = pipeline.evaluate(tmp_path / "q.dxb", data.load(tmp_path / "test.npz"), device=True, board="rp2040")
    assert r["accuracy"] >= source_acc - 0.015, (r["accuracy"], source_acc)
    assert r["mismatches"] == 0 and r["device_accuracy"] == r["accuracy"]
