"""Metrics an experiment reports: pure line parsers, an incremental file reader, and the running
summary (last / min / max per metric) that the store records in ``experiment.json``.

**JSON lines** (the contract, DESIGN §3): one JSON object per line appended to
``$POLYTUNE_METRICS_FILE``, e.g. ``{"step": 3, "loss": 0.41, "acc": 0.9}``.

* A value is a metric when it is an ``int`` or ``float`` (not a ``bool``) and finite: ``NaN`` and
  ``±Infinity`` (which Python's ``json`` writes and reads) are dropped, as are strings, lists,
  objects and numbers too large for a float. Every kept value becomes a ``float``.
* ``step``, when present, must be a non-negative integer (``3`` or ``3.0``); any other ``step``
  is dropped while the line's metrics are kept. ``step`` is never a metric itself.
* A line that is not a JSON object (blank, truncated, binary garbage, an array, a nesting bomb)
  or that carries no metric at all is skipped: parsing never raises.
* Bounds, so that a runaway script cannot bloat the record the driver rewrites: a name longer
  than ``MAX_NAME_LENGTH`` characters is dropped, and an experiment keeps at most
  ``MAX_METRICS`` distinct metric names (later new names are dropped); lines longer than the
  reader's ``max_line_bytes`` (1 MiB) are skipped whole.

**stdout lines** (optional scraping, :func:`parse_stdout_line`), deliberately conservative so
that ordinary log output is never mistaken for metrics:

* ``polytune-metrics: {"loss": 0.3}`` — what :func:`polytune.tracking.log_metrics` prints when
  it runs outside polytune; the JSON is read by the rules above;
* a line made *only* of ``name=number`` pairs separated by spaces and/or commas, optionally
  after a ``metric:`` / ``metrics:`` prefix (any case): ``loss=0.3 acc=0.9``,
  ``metrics: loss=0.3, step=2``. Names match ``[A-Za-z_][A-Za-z0-9_./-]*``; numbers are
  decimal (``1``, ``-0.5``, ``.5``, ``3e-4``). One token that is not such a pair — ``Epoch 3:
  loss=0.3`` — and the whole line is ignored.

**Step of a line**: its explicit ``step``, else its position among the experiment's metric lines
counting from 1. :func:`update` and :func:`curve` use the same rule.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polytune.experiment import Experiment

__all__ = [
    "MAX_METRICS",
    "MAX_NAME_LENGTH",
    "STEP",
    "MetricSummary",
    "MetricsReader",
    "Record",
    "apply_summary",
    "curve",
    "parse_line",
    "parse_lines",
    "parse_stdout_line",
    "summarize",
    "summary_of",
    "update",
]

STEP = "step"
MAX_NAME_LENGTH = 200
MAX_METRICS = 500
#: One parsed line: metric name → float value, plus ``"step"`` → int when the line gave one.
Record = dict[str, float]

_STDOUT_PREFIX = "polytune-metrics:"
_MAX_STDOUT_LINE = 1 << 16
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"([A-Za-z_][A-Za-z0-9_./-]*)=({_NUMBER})")
_SEPARATORS = re.compile(r"[\s,]+")
_METRIC_PREFIX = re.compile(r"metrics?\s*:\s*", re.IGNORECASE)


# ----- parsing (pure) ------------------------------------------------------------------------
def _metric_value(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a metric value."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except (OverflowError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _step_value(value: Any) -> int | None:
    """``value`` as a non-negative integer step, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _clean(obj: Mapping[Any, Any]) -> Record | None:
    record: Record = {}
    for key, value in obj.items():
        if key == STEP or not isinstance(key, str) or not key or len(key) > MAX_NAME_LENGTH:
            continue
        f = _metric_value(value)
        if f is not None:
            record[key] = f
    if not record:
        return None
    step = _step_value(obj.get(STEP))
    if step is not None:
        record[STEP] = step
    return record


def parse_line(raw: bytes | str) -> Record | None:
    """One JSON-lines metrics line → a record, or None when the line holds no metric."""
    raw = raw.strip()
    if not raw or raw[0] not in (123, "{"):  # 123 == ord("{"): only an object can qualify
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, nesting bombs
        return None
    return _clean(obj) if isinstance(obj, dict) else None


def parse_lines(lines: Iterable[bytes | str]) -> list[Record]:
    """Every record of ``lines``, skipping those :func:`parse_line` rejects."""
    out = []
    for raw in lines:
        record = parse_line(raw)
        if record is not None:
            out.append(record)
    return out


def parse_stdout_line(text: bytes | str) -> Record | None:
    """A metrics record scraped from one line of stdout (format in the module docstring)."""
    if len(text) > _MAX_STDOUT_LINE:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    if text.startswith(_STDOUT_PREFIX):
        return parse_line(text[len(_STDOUT_PREFIX) :])
    if "=" not in text:
        return None
    prefix = _METRIC_PREFIX.match(text)
    if prefix:
        text = text[prefix.end() :]
    pairs: dict[str, Any] = {}
    for token in _SEPARATORS.split(text):
        if not token:
            continue
        match = _PAIR.fullmatch(token)
        if match is None:
            return None
        name, number = match.groups()
        pairs[name] = int(number) if name == STEP and number.isdigit() else float(number)
    return _clean(pairs)


# ----- incremental reader --------------------------------------------------------------------
class MetricsReader:
    """Reads the records appended to a metrics file since the previous call.

    * ``offset`` is the number of bytes fully consumed: it always ends just after a newline, so a
      driver may persist it and later resume with ``MetricsReader(path, offset=saved)`` without
      losing a line that was half-written when it stopped.
    * A partial last line is held back until its newline arrives (or ``read_new(final=True)``,
      for a process that ended without a final newline).
    * A line longer than ``max_line_bytes`` is skipped whole; the file is read in chunks, so
      memory stays bounded by ``max_line_bytes`` plus one chunk whatever the file holds.
    * A missing file (the process has not written yet) reads as nothing new. A file that shrank
      or was replaced (another inode) is read again from its start.
    * ``parser`` turns one complete line into a record; :func:`parse_stdout_line` makes this a
      stdout scraper.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_line_bytes: int = 1 << 20,
        *,
        offset: int = 0,
        parser: Callable[[bytes], Record | None] = parse_line,
        chunk_size: int = 1 << 16,
    ) -> None:
        if max_line_bytes < 1 or chunk_size < 1 or offset < 0:
            raise ValueError("max_line_bytes and chunk_size must be positive, offset >= 0")
        self.path = Path(path)
        self.max_line_bytes = max_line_bytes
        self.offset = offset
        self.parser = parser
        self.chunk_size = chunk_size
        #: Lines skipped because they exceeded ``max_line_bytes``.
        self.skipped_long_lines = 0
        self._pos = offset  # next byte to read; offset + len(held back bytes)
        self._pending = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes up to its newline
        self._inode: int | None = None

    def _reset(self) -> None:
        self.offset = self._pos = 0
        self._pending.clear()
        self._skipping = False

    def read_new_lines(self, *, final: bool = False, max_bytes: int | None = None) -> list[bytes]:
        """The complete lines appended since the last call (without their newline).

        ``max_bytes`` bounds how much is read in this call (the rest comes next time).
        ``final=True`` (the writer has exited) also returns a last line that has no newline.
        """
        lines: list[bytes] = []
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return lines
        try:
            st = os.fstat(fd)
            if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self._pos:
                self._reset()
            self._inode = st.st_ino
            budget = max_bytes
            at_end = False
            while budget is None or budget > 0:
                size = self.chunk_size if budget is None else min(self.chunk_size, budget)
                chunk = os.pread(fd, size, self._pos)
                if not chunk:
                    at_end = True
                    break
                self._pos += len(chunk)
                if budget is not None:
                    budget -= len(chunk)
                self._feed(chunk, lines)
        finally:
            os.close(fd)
        if final and at_end and (self._pending or self._skipping):
            if self._pending:
                lines.append(bytes(self._pending))
                self._pending.clear()
            self._skipping = False
            self.offset = self._pos
        return lines

    def _feed(self, chunk: bytes, lines: list[bytes]) -> None:
        parts = chunk.split(b"\n")
        tail = parts.pop()  # the bytes after the chunk's last newline
        limit = self.max_line_bytes
        if parts:
            first = parts[0]
            if self._skipping:
                self._skipping = False
                parts[0] = b""  # the end of an over-long line: already counted
            elif self._pending:
                self._pending += first
                if len(self._pending) > limit:
                    self.skipped_long_lines += 1
                    parts[0] = b""
                else:
                    parts[0] = bytes(self._pending)
                self._pending.clear()
            for line in parts:
                if len(line) <= limit:
                    if line:
                        lines.append(line)
                else:
                    self.skipped_long_lines += 1
            self.offset = self._pos - len(tail)
        if self._skipping:
            return
        if len(self._pending) + len(tail) > limit:
            self._pending.clear()
            self._skipping = True
            self.skipped_long_lines += 1
        else:
            self._pending += tail

    def read_new(self, *, final: bool = False, max_bytes: int | None = None) -> list[Record]:
        """The records of the lines appended since the last call (see :meth:`read_new_lines`)."""
        parser = self.parser
        out = []
        for line in self.read_new_lines(final=final, max_bytes=max_bytes):
            record = parser(line)
            if record is not None:
                out.append(record)
        return out


# ----- summary (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricSummary:
    """What an experiment reported so far: the last, smallest and largest value of each metric,
    the number of metric lines and the step of the last one."""

    last: dict[str, float] = field(default_factory=dict)
    min: dict[str, float] = field(default_factory=dict)
    max: dict[str, float] = field(default_factory=dict)
    lines: int = 0
    last_step: int | None = None


def update(summary: MetricSummary, records: Iterable[Mapping[str, Any]]) -> MetricSummary:
    """``summary`` extended by ``records`` (a new summary; the inputs are not modified).

    A metric absent from a later record keeps its previous last value (Polyaxon's merge rule).
    """
    last = dict(summary.last)
    lo = dict(summary.min)
    hi = dict(summary.max)
    lines = summary.lines
    last_step = summary.last_step
    for record in records:
        lines += 1
        step = _step_value(record.get(STEP))
        last_step = lines if step is None else step
        for key, value in record.items():
            if key == STEP:
                continue
            f = _metric_value(value)
            if f is None or (key not in last and len(last) >= MAX_METRICS):
                continue
            last[key] = f
            old = lo.get(key)
            if old is None or f < old:
                lo[key] = f
            old = hi.get(key)
            if old is None or f > old:
                hi[key] = f
    return MetricSummary(last=last, min=lo, max=hi, lines=lines, last_step=last_step)


def summarize(records: Iterable[Mapping[str, Any]]) -> MetricSummary:
    return update(MetricSummary(), records)


def curve(records: Iterable[Mapping[str, Any]], metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every record that reports ``metric``, in file order."""
    points = []
    for position, record in enumerate(records, start=1):
        value = _metric_value(record.get(metric))
        if value is not None:
            step = _step_value(record.get(STEP))
            points.append((position if step is None else step, value))
    return points


def summary_of(exp: Experiment) -> MetricSummary:
    """The summary stored in an experiment record."""

    def floats(d: Mapping[str, Any]) -> dict[str, float]:
        return {k: f for k, v in d.items() if (f := _metric_value(v)) is not None}

    return MetricSummary(
        last=floats(exp.metrics),
        min=floats(exp.metrics_min),
        max=floats(exp.metrics_max),
        lines=exp.metric_lines,
        last_step=exp.last_step,
    )


def apply_summary(exp: Experiment, summary: MetricSummary) -> Experiment:
    """``exp`` with its metric fields set from ``summary``."""
    return exp.with_(
        metrics=dict(summary.last),
        metrics_min=dict(summary.min),
        metrics_max=dict(summary.max),
        metric_lines=summary.lines,
        last_step=summary.last_step,
    )
