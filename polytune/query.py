"""Polyaxon-style queries and sorting over experiments (pure).

Query: comma-separated conditions, all of which must hold (AND)::

    status:succeeded, metrics.loss:<=0.3, params.act:relu|sigmoid, params.lr:0.01..0.1, id:~3

* ``field:value`` equality; ``a|b`` any of; ``~`` in front negates; ``<``, ``<=``, ``>``, ``>=``
  compare numbers; ``a..b`` is an inclusive numeric range; ``nil`` matches a missing value.
* fields: ``id``, ``status``, ``attempt``, ``duration``, ``params.NAME``, ``metrics.NAME``
  (``metric.NAME`` is accepted, as Polyaxon 0.x did), ``meta.NAME`` (bracket, rung, …).

Sort: comma-separated fields, ``-`` in front for descending: ``-metrics.accuracy,id``.
Experiments missing the sort field go last either way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from polytune.errors import UsageError
from polytune.experiment import Experiment

__all__ = ["field_value", "parse_query", "parse_sort", "select", "sort_experiments"]

_MISSING = object()
_CMP = re.compile(r"^(<=|>=|<|>)\s*(.+)$")


def field_value(exp: Experiment, name: str) -> Any:
    """The value of a query/sort field of an experiment, or ``_MISSING``."""
    if name == "id":
        return exp.id
    if name == "status":
        return exp.status.value
    if name == "attempt":
        return exp.attempt
    if name == "duration":
        return exp.duration if exp.duration is not None else _MISSING
    prefix, _, key = name.partition(".")
    source: dict[str, Any] | None = {
        "params": exp.params,
        "param": exp.params,
        "metrics": exp.metrics,
        "metric": exp.metrics,
        "meta": exp.meta,
    }.get(prefix)
    if source is None or not key:
        raise UsageError(
            f"unknown field {name!r}: use id, status, attempt, duration, params.NAME, metrics.NAME or meta.NAME"
        )
    return source.get(key, _MISSING)


def _getter(name: str) -> Callable[[Experiment], Any]:
    """``field_value(exp, name)`` as a function, specialized for the common fields."""
    prefix, _, key = name.partition(".")
    if name == "id":
        return lambda e: e.id
    if prefix in ("metrics", "metric") and key:
        return lambda e: e.metrics.get(key, _MISSING)
    if prefix in ("params", "param") and key:
        return lambda e: e.params.get(key, _MISSING)
    field_value(Experiment(id=0, config={}, params={}), name)  # an unknown field raises now
    return lambda e: field_value(e, name)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _number(value)
    return None


def _equal(value: Any, text: str) -> bool:
    if text == "nil":
        return value is _MISSING or value is None
    if value is _MISSING:
        return False
    num = _number(text)
    if num is not None and (v := _as_number(value)) is not None:
        return math.isclose(v, num, rel_tol=1e-12, abs_tol=0.0) or v == num
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    return str(value) == text


@dataclass(frozen=True)
class Condition:
    field: str
    test: Callable[[Any], bool]
    negate: bool

    def __call__(self, exp: Experiment) -> bool:
        result = self.test(field_value(exp, self.field))
        return not result if self.negate else result


def _make_test(expr: str, field: str) -> Callable[[Any], bool]:
    m = _CMP.match(expr)
    if m:
        op, rhs = m.groups()
        bound = _number(rhs.strip())
        if bound is None:
            raise UsageError(f"query {field}:{expr}: {rhs!r} is not a number")

        def compare(value: Any) -> bool:
            v = _as_number(value) if value is not _MISSING else None
            if v is None:
                return False
            return {"<": v < bound, "<=": v <= bound, ">": v > bound, ">=": v >= bound}[op]

        return compare
    if ".." in expr:
        lo_text, _, hi_text = expr.partition("..")
        lo, hi = _number(lo_text), _number(hi_text)
        if lo is None or hi is None:
            raise UsageError(f"query {field}:{expr}: a range is NUMBER..NUMBER")

        def in_range(value: Any) -> bool:
            v = _as_number(value) if value is not _MISSING else None
            return v is not None and lo <= v <= hi

        return in_range
    options = [o.strip() for o in expr.split("|")]
    return lambda value: any(_equal(value, o) for o in options)


def parse_query(text: str | None) -> list[Condition]:
    """Parse a query string into conditions (raises ``UsageError`` naming the bad part)."""
    if not text:
        return []
    conditions = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        field, sep, expr = part.partition(":")
        if not sep or not field.strip() or not expr.strip():
            raise UsageError(f"query: {part!r} is not FIELD:VALUE (e.g. metrics.loss:<=0.3)")
        field = field.strip()
        expr = expr.strip()
        negate = expr.startswith("~")
        if negate:
            expr = expr[1:].strip()
        # Validate the field name once (raises on an unknown prefix).
        if field not in ("id", "status", "attempt", "duration") and "." not in field:
            raise UsageError(
                f"query: unknown field {field!r}: use id, status, attempt, duration, params.NAME, metrics.NAME or meta.NAME"
            )
        conditions.append(Condition(field, _make_test(expr, field), negate))
    return conditions


def select(experiments: Sequence[Experiment], conditions: Sequence[Condition]) -> list[Experiment]:
    return [e for e in experiments if all(c(e) for c in conditions)]


def parse_sort(text: str | None) -> list[tuple[str, bool]]:
    """``-metrics.loss,id`` → ``[("metrics.loss", True), ("id", False)]`` (True = descending)."""
    if not text:
        return []
    keys = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("+-").strip()
        if not name:
            raise UsageError(f"sort: {part!r} names no field")
        keys.append((name, desc))
    return keys


def sort_experiments(
    experiments: Sequence[Experiment], keys: Sequence[tuple[str, bool]]
) -> list[Experiment]:
    """Stable multi-key sort; missing values go last whatever the direction."""
    result = list(experiments)
    for name, desc in reversed(keys):
        get = _getter(name)
        values = [(get(e), e) for e in result]  # once per record (status sorts 10,000s)
        present = [(v, e) for v, e in values if v is not _MISSING and v is not None]
        missing = [e for v, e in values if v is _MISSING or v is None]
        present.sort(key=lambda t: _sort_key(t[0]), reverse=desc)
        result = [e for _, e in present] + missing
    return result


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers before text; numbers by value, text alphabetically (reverse keeps stability)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))
