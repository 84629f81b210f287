"""A cheap epoch-by-epoch training script: a one-hidden-layer MLP written in numpy, trained with
minibatch SGD (momentum, L2) on the handwritten digits that ship with scikit-learn.

It starts in a fraction of a second (numpy only: the digits are read from scikit-learn's bundled
``digits.csv.gz`` without importing scikit-learn, which alone takes seconds), so several seeds of
a whole random search fit in minutes on two cores, while every epoch still costs real compute.
After each epoch it reports the validation cross-entropy ``loss`` and ``accuracy`` with
``polytune.tracking.log_metrics(step=epoch, ...)`` (what early stopping and Hyperband need), and
the CPU seconds used so far (``cpu``). ``--augment K`` adds K randomly shifted copies of the
training images to every epoch: more work per epoch, as in real training.
Deterministic: the same hyperparameters give the same curve.

Run it alone:  python examples/mlp_epochs.py --learning-rate 0.05 --epochs 5
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import tempfile
import time

import numpy as np

from polytune.tracking import log_metrics


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits, parsed once and cached as ``.npy`` next to the system's temporary files
    (parsing the CSV costs more CPU than a few epochs; real training scripts cache too)."""
    cache = os.path.join(tempfile.gettempdir(), f"polytune-digits-{os.getuid()}.npy")
    try:
        data = np.load(cache)
        return data[:, :-1], data[:, -1].astype(int)
    except (OSError, ValueError):
        pass
    x, y = _parse_digits()
    tmp = f"{cache}.{os.getpid()}.npy"
    np.save(tmp, np.column_stack([x, y]))
    os.replace(tmp, cache)
    return x, y


def _parse_digits() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for root in locations:
        path = os.path.join(root, "datasets", "data", "digits.csv.gz")
        if os.path.exists(path):
            with gzip.open(path, "rt") as fh:
                data = np.loadtxt(fh, delimiter=",")
            return data[:, :-1], data[:, -1].astype(int)
    from sklearn.datasets import load_digits as sk_load  # the slow path, same data

    x, y = sk_load(return_X_y=True)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--augment", type=int, default=0, help="randomly shifted copies of the images per epoch"
    )
    args = parser.parse_args()

    x, y = load_digits()
    rng = np.random.default_rng(args.seed)
    order = np.random.default_rng(0).permutation(len(y))  # a fixed split
    x = x[order]
    y = y[order]
    n_val = len(y) * 3 // 10
    x_val, y_val, x_train, y_train = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    mean, std = x_train.mean(0), x_train.std(0) + 2.0  # never-lit border pixels: std 0
    images = x_train.reshape(-1, 8, 8)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    onehot = np.eye(10)[y_train]

    def shifted() -> np.ndarray:
        """Every training image moved by up to one pixel in each direction (zero fill)."""
        out = np.zeros_like(images)
        dy, dx = rng.integers(-1, 2, size=2)
        src = images[:, max(0, -dy) : 8 - max(0, dy), max(0, -dx) : 8 - max(0, dx)]
        out[:, max(0, dy) : 8 - max(0, -dy), max(0, dx) : 8 - max(0, -dx)] = src
        return (out.reshape(len(out), 64) - mean) / std

    w1 = rng.normal(0, np.sqrt(2.0 / 64), (64, args.hidden))
    b1 = np.zeros(args.hidden)
    w2 = rng.normal(0, np.sqrt(1.0 / args.hidden), (args.hidden, 10))
    b2 = np.zeros(10)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]

    def forward(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.maximum(inputs @ params[0] + params[1], 0.0)
        logits = h @ params[2] + params[3]
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return h, p / p.sum(1, keepdims=True)

    for epoch in range(1, args.epochs + 1):
        inputs = np.concatenate([x_train] + [shifted() for _ in range(args.augment)])
        targets = np.concatenate([onehot] * (args.augment + 1))
        perm = rng.permutation(len(inputs))
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start : start + args.batch_size]
            xb, yb = inputs[idx], targets[idx]
            h, p = forward(xb)
            g_logits = (p - yb) / len(idx)
            g_w2 = h.T @ g_logits + args.alpha * params[2]
            g_b2 = g_logits.sum(0)
            g_h = (g_logits @ params[2].T) * (h > 0)
            g_w1 = xb.T @ g_h + args.alpha * params[0]
            g_b1 = g_h.sum(0)
            for i, g in enumerate((g_w1, g_b1, g_w2, g_b2)):
                velocity[i] = args.momentum * velocity[i] - args.learning_rate * g
                params[i] += velocity[i]
        _, p_val = forward(x_val)
        loss = float(-np.log(np.clip(p_val[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
        accuracy = float((p_val.argmax(1) == y_val).mean())
        if not np.isfinite(loss):
            loss = 1e3  # diverged: a large, finite loss (NaN would not be a metric)
        # cpu: CPU seconds this process has used so far (start-up included), so a benchmark can
        # measure compute without the noise of wall-clock time on a shared machine.
        log_metrics(step=epoch, loss=loss, accuracy=accuracy, cpu=time.process_time())


if __name__ == "__main__":
    main()
