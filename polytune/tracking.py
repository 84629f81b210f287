"""The helper a training script may import (standard library only: importing it is instant and
pulls in neither numpy nor the rest of polytune).

    from polytune.tracking import get_params, log_metrics

    params = get_params()                    # {"lr": 0.01, "batch_size": 64}
    for epoch in range(10):
        ...
        log_metrics(step=epoch, loss=loss, accuracy=acc)

Under polytune, ``log_metrics`` appends one JSON line to ``$POLYTUNE_METRICS_FILE``. Outside
polytune (the variable is unset, e.g. while developing the script) it prints the same line to
stdout as ``polytune-metrics: {...}`` — a format polytune's stdout scraping also understands — so
the script runs unchanged everywhere.

Scripts written for Polyaxon keep working: ``send_metrics`` is an alias of ``log_metrics``, and
``get_params`` falls back to ``POLYAXON_PARAMS``.
"""

from __future__ import annotations

import json
import operator
import os
from typing import Any

__all__ = [
    "get_experiment_id",
    "get_group_dir",
    "get_outputs_path",
    "get_params",
    "log_metrics",
    "send_metrics",
]

METRICS_FILE_ENV = "POLYTUNE_METRICS_FILE"
STDOUT_PREFIX = "polytune-metrics: "


def _as_float(name: str, value: Any) -> float:
    try:
        # float() accepts numpy scalars and one-element arrays/tensors as well as plain numbers.
        return float(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"log_metrics: metric {name!r} must be a number, got {type(value).__name__} {value!r}"
        ) from e


def log_metrics(step: int | None = None, **values: Any) -> None:
    """Report metric values (numbers; numpy scalars are converted with ``float``), optionally at
    a training ``step`` (a non-negative integer).

    Each call appends one line with a single ``write`` to a file opened with ``O_APPEND``, so
    lines from concurrent writers (several processes of one experiment) never interleave.
    """
    record: dict[str, Any] = {}
    if step is not None:
        try:
            record["step"] = operator.index(step)
        except TypeError as e:
            raise TypeError(f"log_metrics: step must be an integer, got {step!r}") from e
        if record["step"] < 0:
            raise ValueError(f"log_metrics: step must be >= 0, got {step!r}")
    for name, value in values.items():
        record[name] = _as_float(name, value)
    line = json.dumps(record, separators=(",", ":"))
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        print(STDOUT_PREFIX + line, flush=True)
        return
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular file takes the whole line at once; loop for the odd short write
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


#: Polyaxon's name (``polyaxon_helper.send_metrics``).
send_metrics = log_metrics


def get_params() -> dict[str, Any]:
    """This experiment's params (``POLYTUNE_PARAMS``, else ``POLYAXON_PARAMS``), or ``{}``."""
    for name in ("POLYTUNE_PARAMS", "POLYAXON_PARAMS"):
        text = os.environ.get(name)
        if text:
            try:
                params = json.loads(text)
            except ValueError as e:
                raise ValueError(f"${name} is not valid JSON: {e}") from e
            if not isinstance(params, dict):
                raise ValueError(f"${name} must hold a JSON object, got {text[:80]!r}")
            return params
    return {}


def get_outputs_path() -> str | None:
    """Where this experiment keeps checkpoints and other outputs (None outside polytune)."""
    return os.environ.get("POLYTUNE_OUTPUTS_PATH") or os.environ.get("POLYAXON_RUN_OUTPUTS_PATH")


def get_experiment_id() -> int | None:
    """This experiment's id within its group (None outside polytune)."""
    text = os.environ.get("POLYTUNE_EXPERIMENT_ID")
    if not text:
        return None
    try:
        return int(text)
    except ValueError as e:
        raise ValueError(f"$POLYTUNE_EXPERIMENT_ID is not an integer: {text!r}") from e


def get_group_dir() -> str | None:
    """The group directory (None outside polytune)."""
    return os.environ.get("POLYTUNE_GROUP_DIR") or None
