"""A real training script for polytune's examples: a small neural network (scikit-learn's
MLPClassifier) on the handwritten digits dataset that ships with scikit-learn (no download).

It reads its hyperparameters from the command line, reports validation accuracy and training
loss after every epoch with ``polytune.tracking.log_metrics`` (so learning curves, early stopping
and Hyperband work), and checkpoints to ``$POLYTUNE_OUTPUTS_PATH`` so a resumed run (Hyperband
with ``resume: true``, or a rerun after a crash) continues where it stopped instead of starting over.

Run it alone:  python examples/train.py --learning-rate 0.01 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import pickle
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from polytune.tracking import log_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units")
    parser.add_argument("--activation", default="relu", choices=["relu", "tanh", "logistic"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)

    outputs = os.environ.get("POLYTUNE_OUTPUTS_PATH")
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

    classes = sorted(set(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(start_epoch, args.epochs):
            clf.partial_fit(X_train, y_train, classes=classes)
            accuracy = clf.score(X_val, y_val)
            log_metrics(step=epoch + 1, accuracy=accuracy, loss=clf.loss_)
            print(f"epoch {epoch + 1}: loss={clf.loss_:.4f} accuracy={accuracy:.4f}", flush=True)
            if checkpoint:
                tmp = checkpoint + ".tmp"
                with open(tmp, "wb") as fh:
                    pickle.dump((clf, epoch + 1), fh)
                os.replace(tmp, checkpoint)


if __name__ == "__main__":
    main()
