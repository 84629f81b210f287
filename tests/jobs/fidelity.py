"""A fake multi-fidelity training script for Hyperband/ASHA tests (standard library only).

The metric is a known function of the params and the resource:

    loss(x, y, epochs) = (x - 3)^2 + (y - 1)^2 + 1 / epochs

It "trains" epoch by epoch up to ``--epochs``, logging ``loss`` after each one, and checkpoints
the epochs done to ``$POLYTUNE_OUTPUTS_PATH/checkpoint.json``: a rerun with the same outputs path
(Hyperband ``resume: true``) continues from there. It records what it saw in
``$POLYTUNE_EXPERIMENT_DIR/fidelity.json`` (argv, the epochs it started from, the resource from
the environment, the outputs path).

    fidelity.py --x 2.5 [--y 1] --epochs 9 [--sleep-per-epoch 0.01] [--fail-if-x 2.5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from polytune.tracking import log_metrics


def loss(x: float, y: float, epochs: float) -> float:
    return (x - 3) ** 2 + (y - 1) ** 2 + 1 / epochs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, default=1.0)
    parser.add_argument("--epochs", type=float, required=True)
    parser.add_argument("--sleep-per-epoch", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=0.0, help="sleep once before training")
    parser.add_argument("--fail-if-x", type=float, default=None)
    args = parser.parse_args()
    outputs = os.environ.get("POLYTUNE_OUTPUTS_PATH", ".")
    exp_dir = os.environ.get("POLYTUNE_EXPERIMENT_DIR", ".")
    checkpoint = os.path.join(outputs, "checkpoint.json")
    done = 0.0
    if os.path.exists(checkpoint):
        with open(checkpoint) as fh:
            done = float(json.load(fh)["epochs"])
    record = {
        "argv": sys.argv[1:],
        "start_epochs": done,
        "env_epochs": os.environ.get("POLYTUNE_PARAM_EPOCHS"),
        "params": os.environ.get("POLYTUNE_PARAMS"),
        "outputs": outputs,
        "id": os.environ.get("POLYTUNE_EXPERIMENT_ID"),
    }
    with open(os.path.join(exp_dir, "fidelity.json"), "w") as fh:
        json.dump(record, fh)
    if args.sleep:
        time.sleep(args.sleep)
    if args.fail_if_x is not None and args.x == args.fail_if_x:
        sys.exit(3)
    epoch = done
    while epoch < args.epochs:
        epoch = min(args.epochs, float(int(epoch) + 1))
        if args.sleep_per_epoch:
            time.sleep(args.sleep_per_epoch)
        log_metrics(step=int(epoch), loss=loss(args.x, args.y, epoch))
        tmp = checkpoint + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"epochs": epoch}, fh)
        os.replace(tmp, checkpoint)
    if done >= args.epochs:
        # Already there (a rerun after a crash): report the final value again.
        log_metrics(step=int(done), loss=loss(args.x, args.y, done))


if __name__ == "__main__":
    main()
