"""An experiment that reports a known learning curve (standard library only, starts fast).

    curve.py --values 0.9,0.7,0.5 [--metric loss] [--sleep 0.05] [--no-step] [--first-step 1]
             [--hang SEC] [--chatter SEC] [--fail] [--x X --fail-for 2,4] [--stamps FILE]

Writes one metric line per value (``{"step": k, "<metric>": v}``, or without ``step`` with
``--no-step``), sleeping ``--sleep`` seconds *before* each line, then, on request, stays silent
for ``--hang`` seconds, prints a line to stdout every 0.05 s for ``--chatter`` seconds, and
exits 1 (``--fail``, or ``--x`` is one of ``--fail-for``). With
``--stamps`` it appends ``<id> <start> <end|-> <lines written>`` to FILE on exit or on SIGTERM,
so a test can see when each experiment ran and how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def main() -> None:
    start = time.time()
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", required=True)
    parser.add_argument("--metric", default="loss")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--no-step", action="store_true")
    parser.add_argument("--first-step", type=int, default=1)
    parser.add_argument("--hang", type=float, default=0.0)
    parser.add_argument("--chatter", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--x", default=None)
    parser.add_argument("--fail-for", default="")
    parser.add_argument("--stamps", default=None)
    args = parser.parse_args()
    values = [float(v) for v in args.values.split(",") if v]
    path = os.environ["POLYTUNE_METRICS_FILE"]
    exp_id = os.environ.get("POLYTUNE_EXPERIMENT_ID", "?")
    written = 0

    def stamp(end: str) -> None:
        if args.stamps:
            with open(args.stamps, "a") as fh:
                fh.write(f"{exp_id} {start} {end} {written}\n")

    def on_term(signum: int, frame: object) -> None:
        stamp("-")
        sys.exit(143)

    signal.signal(signal.SIGTERM, on_term)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i, value in enumerate(values):
        if args.sleep:
            time.sleep(args.sleep)
        record: dict[str, float | int] = {args.metric: value}
        if not args.no_step:
            record["step"] = args.first_step + i
        os.write(fd, (json.dumps(record) + "\n").encode())
        written += 1
    os.close(fd)
    time.sleep(args.hang)
    until = time.monotonic() + args.chatter
    while time.monotonic() < until:
        time.sleep(0.05)
        print("still working", flush=True)
    stamp(str(time.time()))
    if args.fail or (args.x is not None and args.x in args.fail_for.split(",")):
        sys.exit(1)


if __name__ == "__main__":
    main()
