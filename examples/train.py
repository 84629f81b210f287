"""A real training script for polytune's examples: a small neural network (scikit-learn's
MLPClassifier) on the handwritten digits dataset that ships with scikit-learn (no download).

It reads its hyperparameters from the command line, reports validation accuracy, validation loss
(``val_loss``, the log loss on the held-out 30 %) and training loss after every epoch with
``polytune.tracking.log_metrics`` (so learning curves, early stopping and Hyperband work), and
checkpoints to ``$POLYTUNE_OUTPUTS_PATH`` so a resumed run (Hyperband with ``resume: true``, or a
rerun after a crash) continues where it stopped instead of starting over.

The resume contract of Hyperband / ASHA with ``resume: true``: every rung of a configuration runs
with the same outputs path and ``--epochs`` set to the rung's resource; the script loads the
checkpoint, trains the remaining epochs only, and reports the metrics of the final epoch — also
when the checkpoint already has all the epochs (a rerun after a crash), so the rung gets its value.

Run it alone:  python examples/train.py --learning-rate 0.01 --epochs 5
(``benchmarks/hyperband.py`` calls ``main(argv, outputs, log)`` in process.)
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from polytune.tracking import log_metrics


@functools.cache
def _data() -> tuple[Any, Any, Any, Any]:
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


def _evaluate(clf: Any, X_val: Any, y_val: Any) -> tuple[float, float]:
    """Validation accuracy and mean log loss (``val_loss``: what examples/hyperband.yaml and
    examples/asha.yaml minimize), from one ``predict_proba``."""
    proba = clf.predict_proba(X_val)
    index = {c: i for i, c in enumerate(clf.classes_)}
    picked = proba[range(len(y_val)), [index[c] for c in y_val]]
    accuracy = float((clf.classes_[proba.argmax(axis=1)] == y_val).mean())
    return accuracy, float(-sum(math.log(max(p, 1e-15)) for p in picked) / len(y_val))


def main(
    argv: Sequence[str] | None = None,
    outputs: str | None = None,
    log: Callable[..., None] = log_metrics,
) -> None:
    """Train as the command line says; ``outputs`` defaults to ``$POLYTUNE_OUTPUTS_PATH``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--activation", default="relu", choices=["relu", "tanh", "logistic"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)
    X_train, X_val, y_train, y_val = _data()

    outputs = outputs or os.environ.get("POLYTUNE_OUTPUTS_PATH")
    checkpoint = os.path.join(outputs, "checkpoint.pkl") if outputs else None
    start_epoch = 0
    if checkpoint and os.path.exists(checkpoint):
        with open(checkpoint, "rb") as fh:
            clf, start_epoch = pickle.load(fh)
        print(f"resuming from epoch {start_epoch}")
    else:
        clf = MLPClassifier(
            hidden_layer_sizes=(args.hidden,),
            activation=args.activation,
            alpha=args.alpha,
            learning_rate_init=args.learning_rate,
            batch_size=args.batch_size,
            random_state=0,
        )

    classes = sorted(set(y_train))
    if start_epoch >= args.epochs:
        # The checkpoint already has every epoch asked for (a rerun after a crash, or a rung
        # that gives no more epochs): report its metrics again so the run has a value.
        accuracy, val_loss = _evaluate(clf, X_val, y_val)
        log(step=start_epoch, accuracy=accuracy, val_loss=val_loss, loss=clf.loss_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(start_epoch, args.epochs):
            clf.partial_fit(X_train, y_train, classes=classes)
            accuracy, val_loss = _evaluate(clf, X_val, y_val)
            log(step=epoch + 1, accuracy=accuracy, val_loss=val_loss, loss=clf.loss_)
            print(
                f"epoch {epoch + 1}: loss={clf.loss_:.4f} val_loss={val_loss:.4f} "
                f"accuracy={accuracy:.4f}",
                flush=True,
            )
            if checkpoint:
                tmp = checkpoint + ".tmp"
                with open(tmp, "wb") as fh:
                    pickle.dump((clf, epoch + 1), fh)
                os.replace(tmp, checkpoint)


if __name__ == "__main__":
    main()
