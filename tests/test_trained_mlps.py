"""Trained scikit-learn MLPs quantize for every seed: L2 regularisation leaves dead units with weights near 1e-10,
whose per-row scale used to collapse and blow their folded bias past int32."""
import warnings

import numpy as np
import pytest
from joblib import Parallel, delayed

from microdx import reference
from microdx.importers import npz
from microdx.ir import canonicalize
from microdx.quantize import quantize_graph


def digits_split():
    """scikit-learn's digits (bundled), features scaled to [0, 1], a fixed stratified 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def _seed(seed, x_tr, x_te, y_tr, y_te):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((64, 32), random_state=seed).fit(x_tr, y_tr)
    g = canonicalize("digits", (64,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(npz.from_sklearn_mlp(clf))])
    tiny = min(float(np.abs(w).max(axis=0).min()) for w in clf.coefs_)
    q, notes = quantize_graph(g, x_tr)
    return seed, float(clf.score(x_te, y_te)), reference.accuracy(reference.run(q, x_te), y_te), tiny, notes


def test_default_digits_mlp_quantizes_for_every_seed():
    x_tr, x_te, y_tr, y_te = digits_split()
    results = Parallel(n_jobs=2)(delayed(_seed)(s, x_tr, x_te, y_tr, y_te) for s in range(10))
    assert min(r[3] for r in results) < 1e-6, "no seed produced the dead units this test is about"
    for seed, sk, acc, tiny, notes in results:
        assert acc >= sk - 0.015, (seed, sk, acc)
        if tiny < 1e-6:
            assert any("floored" in n for n in notes), (seed, notes)
