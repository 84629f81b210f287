"""A tiny experiment for integration tests (standard library only, starts fast).

Writes its start/end wall-clock stamps and what it received (argv, params env) to
``$POLYTUNE_EXPERIMENT_DIR/job.json``, reports metrics with polytune.tracking, and can sleep,
fail or hang on request:

    job.py --x 3 --sleep 0.2 [--fail-if-x 3] [--steps 3] [--hang] [--ignore-term]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from polytune.tracking import log_metrics


def main() -> None:
    start = time.time()
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", default="0")
    parser.add_argument("--y", default="0")
    parser.add_argument("--text", default="")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--fail-if-x", default=None)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--stamps", default=None, help="append 'start end id' to this file")
    args = parser.parse_args()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exp_dir = os.environ.get("POLYTUNE_EXPERIMENT_DIR", ".")
    record = {
        "argv": sys.argv[1:],
        "x": args.x,
        "y": args.y,
        "text": args.text,
        "params_env": os.environ.get("POLYTUNE_PARAMS"),
        "polyaxon_params_env": os.environ.get("POLYAXON_PARAMS"),
        "env_x": os.environ.get("POLYTUNE_PARAM_X"),
        "outputs": os.environ.get("POLYTUNE_OUTPUTS_PATH"),
        "cwd": os.getcwd(),
        "start": start,
    }
    try:
        x = float(args.x)
    except ValueError:
        x = 0.0
    for step in range(1, args.steps + 1):
        if args.sleep:
            time.sleep(args.sleep / args.steps)
        log_metrics(step=step, loss=(x - 3) ** 2 + 1.0 / step, score=-((x - 3) ** 2))
    if args.hang:
        while True:
            time.sleep(0.1)
    if args.fail_if_x is not None and args.x == args.fail_if_x:
        print(f"failing on purpose for x={args.x}", file=sys.stderr)
        sys.exit(3)
    record["end"] = time.time()
    with open(os.path.join(exp_dir, "job.json"), "w") as fh:
        json.dump(record, fh)
    if args.stamps:
        with open(args.stamps, "a") as fh:
            fh.write(f"{start} {record['end']} {os.environ.get('POLYTUNE_EXPERIMENT_ID')}\n")


if __name__ == "__main__":
    main()
