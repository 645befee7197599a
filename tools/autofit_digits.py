"""Auto-fit on a scikit-learn digits MLP 64-512-256-10 (about 166 KB as plain int8) for the STM32F411's 64 KB
filesystem: prints the chosen recipe, blob bytes, accuracy and loss, or the refusal. The figure quoted in
docs/optimizers.md comes from `python tools/autofit_digits.py` (loss is measured on the same held-out split the
search scores on: the search's own estimate, not an unbiased test figure)."""
import argparse
import json
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from microdx.autofit import autofit
from microdx.errors import BoardFitError
from microdx.importers import npz
from microdx.ir import canonicalize


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", default="stm32f411")
    ap.add_argument("--max-loss", type=float, nargs="+", default=[1.0, 2.0], help="points")
    a = ap.parse_args()
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x / 16.0, y, test_size=0.3, random_state=0, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier((512, 256), random_state=0, max_iter=300).fit(x_tr, y_tr)
    g = canonicalize("digits", (64,), [(k, f"{k}{i}", t) for i, (k, t) in enumerate(npz.from_sklearn_mlp(clf))])
    for loss in a.max_loss:
        t0 = time.time()
        try:
            r = autofit(g, a.board, x_tr, x_te, y_te, loss)
            out = {k: r[k] for k in ("recipe", "blob_bytes", "accuracy", "baseline_accuracy", "loss_points",
                                     "allowance_bytes", "tried")}
        except BoardFitError as e:
            out = {"refused": str(e)}
        print(json.dumps({"max_loss": loss, **out, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
