"""An experiment for executor tests (standard library only): appends one JSON line per event to
``--stamps`` (``start`` and ``end`` with the wall-clock time, the experiment id, its attempt, its
pid, its host and ``CUDA_VISIBLE_DEVICES``), reports ``loss`` once per step, and sleeps
``--sleep`` seconds per step."""

from __future__ import annotations

import argparse
import json
import os
import socket
import time


def stamp(path: str, event: str) -> None:
    line = {
        "event": event,
        "t": time.time(),
        "exp": int(os.environ.get("POLYTUNE_EXPERIMENT_ID", "0")),
        "attempt": int(os.environ.get("POLYTUNE_ATTEMPT", "0")),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--stamps", required=True)
    args = parser.parse_args()
    stamp(args.stamps, "start")
    metrics = os.environ.get("POLYTUNE_METRICS_FILE")
    for step in range(1, args.steps + 1):
        time.sleep(args.sleep)
        if metrics:
            with open(metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "loss": (args.x - 2) ** 2 + 1 / step}) + "\n")
    stamp(args.stamps, "end")


if __name__ == "__main__":
    main()
