"""The finetune recipe step: pruned weights stay zero, shared weights stay shared, accuracy comes back (PyTorch, and
the scikit-learn fallback), and missing data or bad knobs are refused clearly."""
import warnings

import numpy as np
import pytest

from microdx import blob_reader, data, pipeline, reference
from microdx.errors import DataFileError, MicrodxError
from microdx.importers import npz
from microdx.ir import canonicalize
from microdx.optimizers import finetune as finetune_module
from microdx.optimizers import get, parse_recipe
from microdx.quantize import quantize_graph


@pytest.fixture(scope="module")
def digits():
    """(float graph, MLPClassifier, x_train, y_train, x_test, y_test): scikit-learn digits, 64-64-10, x / 16."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((64,), random_state=0).fit(x_tr, y_tr)
    g = canonicalize("digits", (64,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(npz.from_sklearn_mlp(clf))])
    return g, clf, x_tr, y_tr, x_te, y_te


def compress(graph, recipe):
    for step in parse_recipe(recipe):
        graph = step.apply(graph).graph
    return graph


def held_out(graph, digits):
    return reference.accuracy(reference.run_float(graph, digits[4]), digits[5])


def finetune(graph, digits, **knobs):
    return get("finetune", **knobs).apply(graph, data=(digits[2], digits[3]))


@pytest.fixture
def no_torch(monkeypatch):
    monkeypatch.setattr(finetune_module.retrain_torch, "available", lambda: False)


def test_pruned_weights_stay_exactly_zero(digits):
    pytest.importorskip("torch")
    pruned = compress(digits[0], "prune:sparsity=0.8")
    copies = [layer.tensors["w"].copy() for layer in pruned.layers]
    result = finetune(pruned, digits, epochs=3)
    for old, new, copy in zip(pruned.layers, result.graph.layers, copies):
        np.testing.assert_array_equal(new.tensors["w"] == 0, old.tensors["w"] == 0)
        np.testing.assert_array_equal(old.tensors["w"], copy)          # the input graph is unchanged
        assert new.tensors["w"].dtype == new.tensors["b"].dtype == np.float32 and new.attrs == old.attrs
        assert not np.array_equal(new.tensors["w"], old.tensors["w"])   # the kept weights did train
    assert result.report["backend"] == "torch" and result.report["layers"][0]["zeros_kept"] == int(0.8 * 64 * 64)
    assert "training accuracy" in result.report["notes"][0]


def test_shared_weights_keep_their_codebook_and_grouping(digits):
    pytest.importorskip("torch")
    shared = compress(digits[0], "kmeans:bits=3")
    result = finetune(shared, digits, epochs=3)
    for old, new in zip(shared.layers, result.graph.layers):
        values_old, groups_old = np.unique(old.tensors["w"], return_inverse=True)
        values_new, groups_new = np.unique(new.tensors["w"], return_inverse=True)
        assert len(values_new) == len(values_old) <= 8 and new.attrs["codebook_bits"] == 3
        np.testing.assert_array_equal(groups_new, groups_old)          # same weights share a value, same order
        assert not np.array_equal(values_new, values_old)              # the centroids did train


def test_finetune_recovers_hard_pruning(digits):
    """Measured: 90% pruned, held-out accuracy 0.315 (float model 0.976); 10 epochs at lr 0.01 -> 0.926."""
    pytest.importorskip("torch")
    pruned = compress(digits[0], "prune:sparsity=0.9")
    result = finetune(pruned, digits, epochs=10, lr=0.01)
    before, after = held_out(pruned, digits), held_out(result.graph, digits)
    assert before < 0.45 and after > before + 0.4, (before, after)
    assert result.report["train_accuracy_after"] > result.report["train_accuracy_before"] + 0.4


def test_factorized_bottlenecks_finetune_deterministically(digits):
    """Measured: svd:rank=4 held-out 0.485 -> 0.726 after 5 epochs."""
    pytest.importorskip("torch")
    factored = compress(digits[0], "svd:rank=4")
    assert [layer.attrs["act"] for layer in factored.layers] == [None, "relu", None, None]
    result, again = finetune(factored, digits), finetune(factored, digits)
    assert [layer.name for layer in result.graph.layers] == [layer.name for layer in factored.layers]
    assert held_out(result.graph, digits) > held_out(factored, digits) + 0.12
    for a, b in zip(result.graph.layers, again.graph.layers):
        np.testing.assert_array_equal(a.tensors["w"], b.tensors["w"])


@pytest.fixture
def files(tmp_path, digits):
    _, clf, x_tr, y_tr, _, _ = digits
    npz.save(tmp_path / "m.npz", npz.from_sklearn_mlp(clf), labels=clf.classes_, name="digits")
    data.save(tmp_path / "train.npz", x_tr, y_tr)
    data.save(tmp_path / "unlabelled.npz", x_tr)
    return tmp_path


def test_recipe_end_to_end(files):
    pytest.importorskip("torch")
    report = pipeline.convert(files / "m.npz", files / "m.dxb", calib=files / "train.npz",
                              recipe="prune:sparsity=0.8,finetune:epochs=3")
    tuned = report["optimizers"][1]
    assert tuned["optimizer"] == "finetune" and tuned["params"] == {"epochs": 3, "lr": 1e-3, "batch": 64}
    assert tuned["train_accuracy_after"] > tuned["train_accuracy_before"] + 0.1
    assert report["accuracy_calib"] > 0.8 and report["optimized_float_accuracy_calib"] == tuned["train_accuracy_after"]
    blob = blob_reader.read(files / "m.dxb")
    assert blob.graph.recipe == "prune:sparsity=0.8,finetune:epochs=3"
    assert "sparse" in [layer.kind for layer in blob.graph.layers]    # the zeros survived into CSR


def test_without_torch_a_plain_mlp_trains_with_scikit_learn(digits, no_torch):
    """Measured: 90% pruned, held-out 0.315 -> 0.770 after 10 epochs at lr 0.01 (one scikit-learn epoch at a time)."""
    pruned = compress(digits[0], "prune:sparsity=0.9")
    result = finetune(pruned, digits, epochs=10, lr=0.01)
    assert result.report["backend"] == "scikit-learn"
    for old, new in zip(pruned.layers, result.graph.layers):
        np.testing.assert_array_equal(new.tensors["w"] == 0, old.tensors["w"] == 0)
    assert held_out(result.graph, digits) > held_out(pruned, digits) + 0.3
    shared = compress(digits[0], "kmeans:bits=3")
    for old, new in zip(shared.layers, finetune(shared, digits, epochs=2).graph.layers):
        np.testing.assert_array_equal(np.unique(new.tensors["w"], return_inverse=True)[1],
                                      np.unique(old.tensors["w"], return_inverse=True)[1])


def test_without_torch_other_graphs_ask_for_the_extra(digits, no_torch):
    with pytest.raises(MicrodxError, match=r"install the torch extra: pip install -e '\.\[torch\]'"):
        finetune(compress(digits[0], "svd:rank=4"), digits)


def test_missing_or_bad_data_is_refused(digits, files):
    g, _, x_tr, y_tr, _, _ = digits
    step = get("finetune")
    with pytest.raises(MicrodxError, match=r"finetune needs labelled training data: give --calib TRAIN\.npz"):
        step.apply(g)
    with pytest.raises(MicrodxError, match="y has shape \\(10,\\) but x has 1257 rows"):
        step.apply(g, data=(x_tr, y_tr[:10]))
    with pytest.raises(MicrodxError, match=r"y\[0\] = 10 is not a class index of this model \(0\.\.9"):
        step.apply(g, data=(x_tr, np.full(len(x_tr), 10)))
    with pytest.raises(MicrodxError, match="finetune trains float dense layers; layer 'dense0' is dense \\(i8\\)"):
        step.apply(quantize_graph(g, x_tr)[0], data=(x_tr, y_tr))
    with pytest.raises(DataFileError, match=r"recipe step 'finetune' needs labelled training data \(.*unlabelled\.npz "
                                            r"has no class labels y\): give --calib TRAIN\.npz"):
        pipeline.convert(files / "m.npz", files / "x.dxb", calib=files / "unlabelled.npz", recipe="finetune")
    with pytest.raises(DataFileError, match=r"\(no --calib given\)"):
        pipeline.convert(files / "m.npz", files / "x.dxb", use_float=True, recipe="prune:sparsity=0.5,finetune")
    assert not (files / "x.dxb").exists()


@pytest.mark.parametrize("recipe, message", [
    ("finetune:epochs=0", "epochs=0 must be an integer >= 1"),
    ("finetune:epochs=2.5", "epochs=2.5 must be an integer >= 1"),
    ("finetune:lr=0", "lr=0 must be a positive number"),
    ("finetune:lr=fast", "lr=fast must be a positive number"),
    ("finetune:batch=0", "batch=0 must be an integer >= 1"),
    ("finetune:steps=9", "no knob steps; its knobs: epochs, lr, batch"),
])
def test_bad_knobs_are_refused(recipe, message):
    with pytest.raises(MicrodxError, match=message.replace(".", r"\.")):
        parse_recipe(recipe)
