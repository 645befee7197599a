"""Data files mean what docs/npz-schema.md says: x is real-valued whatever its dtype, x_q is int8 codes, and y holds
class indices or values of the blob's labels."""
import json

import numpy as np
import pytest

from microdx import cli, data, reference
from microdx.errors import DataFileError
from microdx.importers import npz

N_OUT = 10
CLASSES = np.arange(1, 2 * N_OUT, 2)      # 1, 3, ..., 19: scikit-learn carries them as labels "1" ... "19"


def _digits():
    """scikit-learn's digits as raw integer pixel counts (0..16), classes 1, 3, ..., 19; an MLP trained on them."""
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x, y = x.astype(np.int64), CLASSES[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((32,), random_state=0, max_iter=200).fit(x[:1200], y[:1200])
    return clf, x, y


def _json(capsys, *argv):
    code = cli.main([str(a) for a in argv] + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    d = tmp_path_factory.mktemp("pixels")
    clf, x, y = _digits()
    npz.save(d / "m.npz", npz.from_sklearn_mlp(clf), labels=[str(c) for c in clf.classes_], name="digits")
    data.save(d / "calib.npz", x[:1200], y[:1200])
    data.save(d / "test_int.npz", x[1200:1500], y[1200:1500])                 # y: label values, x: int64
    data.save(d / "test_float.npz", x[1200:1500].astype(np.float32), y[1200:1500])
    data.save(d / "test_index.npz", x[1200:1500].astype(np.uint8), np.searchsorted(CLASSES, y[1200:1500]))
    assert cli.main(["convert", str(d / "m.npz"), "-o", str(d / "m.dxb"), "--calib", str(d / "calib.npz")]) == 0
    return d


def test_integer_x_is_real_values_on_host_and_device(pixels, capsys):
    as_int = _json(capsys, "eval", pixels / "m.dxb", "--data", pixels / "test_int.npz", "--device", "--heap", "64K")
    as_float = _json(capsys, "eval", pixels / "m.dxb", "--data", pixels / "test_float.npz", "--device")
    assert as_int["accuracy"] > 0.8, as_int
    from microdx import blob_reader                  # read as int8 codes (the old bug) the same numbers score low
    codes = reference.run(blob_reader.read(pixels / "m.dxb").graph, data.load(pixels / "test_int.npz").x.astype(int))
    y = np.searchsorted(CLASSES, data.load(pixels / "test_int.npz").y)
    assert reference.accuracy(codes, y) < 0.3
    assert as_int["accuracy"] == as_float["accuracy"] == as_int["device_accuracy"] == as_float["device_accuracy"]
    assert as_int["mismatches"] == as_float["mismatches"] == 0
    run_int = _json(capsys, "run", pixels / "m.dxb", "--input", pixels / "test_int.npz")
    run_float = _json(capsys, "run", pixels / "m.dxb", "--input", pixels / "test_float.npz")
    assert run_int["outputs"] == run_float["outputs"]


def test_labels_1_3_to_19_are_label_values(pixels, capsys):
    r = _json(capsys, "eval", pixels / "m.dxb", "--data", pixels / "test_int.npz", "--source", pixels / "m.npz")
    assert r["labels_as"] == "label values" and r["accuracy"] > 0.8        # scored 0.0 when read as indices
    assert r["float_accuracy"] > 0.8
    assert r["accuracy_drop_points"] == pytest.approx(100 * (r["float_accuracy"] - r["accuracy"]), abs=0.01)
    conv = _json(capsys, "convert", pixels / "m.npz", "-o", pixels / "again.dxb", "--calib", pixels / "calib.npz")
    assert conv["float_accuracy_calib"] > 0.9 and conv["accuracy_calib"] > 0.9


def test_integer_y_must_be_a_label_value_when_labels_are_integers(pixels, capsys):
    """Labels "1", "3", ... "19": y = 0 (an index) is not one of them, and the error says which reading was used."""
    assert cli.main(["eval", str(pixels / "m.dxb"), "--data", str(pixels / "test_index.npz")]) == 2
    err = capsys.readouterr().err
    assert "is not one of the blob's labels ('1', '3'," in err and "the labels are all integers" in err


def test_x_q_codes_run_as_they_are(pixels, capsys):
    from microdx import blob_reader

    graph = blob_reader.read(pixels / "m.dxb").graph
    d = data.load(pixels / "test_int.npz")
    np.savez(pixels / "codes.npz", x_q=reference.quantize_input(graph, d.x), y=d.y)
    codes = _json(capsys, "eval", pixels / "m.dxb", "--data", pixels / "codes.npz", "--device")
    real = _json(capsys, "eval", pixels / "m.dxb", "--data", pixels / "test_int.npz")
    assert codes["input"] == "x_q" and codes["accuracy"] == real["accuracy"] == codes["device_accuracy"]


def test_class_indices_rules():
    y = np.array([0, 2, 1])
    assert data.class_indices(y, [], 3, "f")[1] == "indices"
    assert data.class_indices(y, ["0", "1", "2"], 3, "f")[0].tolist() == [0, 2, 1]       # "0".."n-1": the same
    assert data.class_indices(y, ["cat", "dog", "eel"], 3, "f")[0].tolist() == [0, 2, 1]  # text labels: indices
    idx, how = data.class_indices(np.array(["eel", "cat"]), ["cat", "dog", "eel"], 3, "f")
    assert idx.tolist() == [2, 0] and how == "label values"
    idx, how = data.class_indices(np.array([19, 1, 3]), [str(c) for c in range(1, 20, 2)], 10, "f")
    assert idx.tolist() == [9, 0, 1] and how == "label values"
    with pytest.raises(DataFileError, match=r"f: y\[1\] = 3 is not a class index of this model \(0..2\)"):
        data.class_indices(np.array([0, 3]), [], 3, "f")
    with pytest.raises(DataFileError, match="has no labels"):
        data.class_indices(np.array(["cat"]), [], 3, "f")


def test_from_arrays_checks_like_a_file():
    with pytest.raises(DataFileError, match=r"x holds nan at row 1, column 0"):
        data.from_arrays([[1.0, 2.0], [np.nan, 0.0]])
    d = data.from_arrays(np.array([[1, 2]], dtype=np.int16), [0])
    assert d.x.dtype == np.float64 and d.x_q is None and d.y.tolist() == [0]
