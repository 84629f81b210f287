"""The search space: Polyaxon's matrix methods, parsed, validated, materialized and sampled.

Pure: data and an explicit ``numpy.random.Generator`` in, plain Python values out.

Numerics follow Polyaxon (SEMANTICS.md §2.3) so that real polyaxonfiles mean what they meant:

* ``range``     = ``numpy.arange(start, stop, step)`` (stop-exclusive, float artefacts included;
  all-integer ranges are computed with Python's ``range``, which gives the same values and never
  overflows)
* ``linspace``  = ``numpy.linspace(start, stop, num)``
* ``logspace``  = ``numpy.logspace(start, stop, num, base)``: values ``base**start .. base**stop``
* ``geomspace`` = ``numpy.geomspace(start, stop, num)``
* ``loguniform``  = ``exp(U(low, high))``: the bounds are natural-log exponents
* ``q*``        = ``floor(x / q) * q``
* ``pvalues``   = one categorical draw; the last value gets ``1 - sum(other probabilities)``
  (numpy's multinomial rule, which Polyaxon used)
* ``qlognormal`` = ``floor(lognormal / q) * q`` (polytune's fix: Polyaxon 0.6.1 exponentiated twice
  and ignored ``q``).

Where polytune is stricter or different, on purpose:

* The sampling RNG is numpy's ``Generator`` (not the legacy global ``RandomState``), so draws differ
  from Polyaxon's for the same seed while the distributions are the same. ``U(low, high)`` is
  computed as ``low + (high - low) * random()`` like ``RandomState.uniform`` (``Generator.uniform``
  refuses ``low > high``, which Polyaxon accepts).
* A discrete parameter's values are *distinct*: a repeated value (``values: [1, 1, 2]``, or a
  ``linspace`` whose points collapse under float rounding) is dropped with a warning, and a repeated
  ``pvalues`` value gets the sum of its probabilities. A grid therefore never runs the same
  configuration twice, and ``Space.size`` counts distinct configurations.
* Normal-family draws are clipped to ``loc ± 10·scale`` (a probability below 1e-22) so that a draw
  can never overflow; parameters whose values would not fit a float are rejected when parsed.
* Numbers that do not fit a float, non-finite numbers and ranges of more than
  ``MAX_MATERIALIZED`` values are configuration errors, not crashes.
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import json
import math
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from polytune.errors import ConfigError, show_value

__all__ = [
    "CONTINUOUS_METHODS",
    "DISCRETE_METHODS",
    "METHODS",
    "Param",
    "Space",
    "config_key",
    "parse_param",
    "plain",
    "space_from_matrix",
]

# Canonical names are the v0 keys; v1/v2 kinds and the v1 spellings map onto them.
RANGE_METHODS = ("range", "linspace", "logspace", "geomspace", "daterange", "datetimerange")
DATE_METHODS = ("daterange", "datetimerange")
DISCRETE_METHODS = ("values", "pvalues", *RANGE_METHODS)
CONTINUOUS_METHODS = (
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)
METHODS = DISCRETE_METHODS + CONTINUOUS_METHODS
ALIASES = {"choice": "values", "pchoice": "pvalues"}
LOG_METHODS = ("logspace", "geomspace", "loguniform", "qloguniform", "lognormal", "qlognormal")
_UNIFORM_FAMILY = ("uniform", "quniform", "loguniform", "qloguniform")
_NORMAL_FAMILY = ("normal", "qnormal", "lognormal", "qlognormal")

# Positional field names of each method (list and "a:b:c" spellings), and how many are required.
_FIELDS: dict[str, tuple[tuple[str, ...], int]] = {
    "range": (("start", "stop", "step"), 3),
    "linspace": (("start", "stop", "num"), 3),
    "logspace": (("start", "stop", "num", "base"), 3),
    "geomspace": (("start", "stop", "num"), 3),
    "daterange": (("start", "stop", "step"), 3),
    "datetimerange": (("start", "stop", "step"), 3),
    "uniform": (("low", "high", "size"), 2),
    "loguniform": (("low", "high", "size"), 2),
    "normal": (("loc", "scale", "size"), 2),
    "lognormal": (("loc", "scale", "size"), 2),
    "quniform": (("low", "high", "q", "size"), 3),
    "qloguniform": (("low", "high", "q", "size"), 3),
    "qnormal": (("loc", "scale", "q", "size"), 3),
    "qlognormal": (("loc", "scale", "q", "size"), 3),
}
# v2 turned these into floats (so `range: 0:10:1` gives 0.0, 1.0, ... there).
_V2_FLOAT_FIELDS = ("start", "stop", "low", "high", "loc", "scale")

# A parameter of more values than this is refused: a grid over it would never finish, and
# materializing it costs memory and seconds at every start.
MAX_MATERIALIZED = 1_000_000

# Normal-family draws are clipped to loc ± SIGMAS·scale (P(|z| > 10) ≈ 1.5e-23): the parse-time
# checks can then guarantee that every value fits a float.
SIGMAS = 10.0
# math.exp overflows above this.
_MAX_EXP = 709.78

Scalar = int | float | str | bool | None


def plain(value: Any) -> Any:
    """Convert numpy scalars/arrays (also nested in lists/dicts) to plain Python values.

    Dates and times (YAML turns ``2019-06-22`` into a ``date``) become ISO strings, as the date
    ranges produce, so every value can go into JSON and a command line unchanged.
    """
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    return value


def config_key(config: Mapping[str, Any]) -> str:
    """A canonical hashable key of a configuration (for de-duplication sets).

    Two configurations have the same key when their JSON forms are equal: ``1`` and ``1.0`` (or
    ``1`` and ``true``) differ, as they do on a command line.
    """
    data = dict(config)
    if all(type(k) is str and type(v) in _JSON_SCALARS for k, v in data.items()):
        return json.dumps(data, sort_keys=True)  # the common case, without the copy by plain()
    return json.dumps(plain(data), sort_keys=True, default=str)


_JSON_SCALARS = (str, int, float, bool, type(None))


def _value_key(value: Any) -> Hashable:
    """A hashable key of one value, equal exactly when the JSON forms are equal (fast for scalars)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return (kind.__name__, value)
    if kind is float:
        return ("float", repr(value))  # repr tells -0.0 from 0.0 and gives NaN one key, like JSON
    return ("json", json.dumps(plain(value), sort_keys=True, default=str))


def _copy(value: Any) -> Any:
    """A value handed out to a configuration: containers are copied so nobody aliases the space."""
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _key_text(key: Any) -> str:
    """A YAML key as it appears in a key path: itself when it is printable text, else its repr
    (so that an error message stays on one line)."""
    if isinstance(key, str) and key and key.isprintable():
        return key
    return repr(key)


def _is_number(value: Any) -> bool:
    # Polyaxon's categorical test: bool is an int subclass, so it counts as a number.
    return isinstance(value, int | float | np.number) and not (
        isinstance(value, float) and math.isnan(value)
    )


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _fmt(value: Any) -> str:
    """Short human form of a number for effective-domain descriptions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return show_value(value, 40)
    if isinstance(value, int):
        if abs(value) < 10**15:
            return str(value)
        value = float(value) if abs(value) < 10**308 else math.inf
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        return f"{value:.4g}"
    return f"{value:.2e}"


class _Table(NamedTuple):
    """A discrete parameter's distinct values, their effective probabilities and positions."""

    values: list[Any]
    probabilities: list[float]
    positions: dict[Hashable, int]
    raw_count: int  # number of values before de-duplication


def _materialize(method: str, a: Mapping[str, Any]) -> list[Any]:
    """The raw (possibly repeated) values of a range method, as plain Python values."""
    if method == "range":
        start, stop, step = a["start"], a["stop"], a["step"]
        if all(type(x) is int for x in (start, stop, step)):
            return list(range(start, stop, step))
        with np.errstate(all="ignore"):
            return plain(np.arange(start, stop, step))  # type: ignore[no-any-return]
    if method == "linspace":
        with np.errstate(all="ignore"):
            return plain(np.linspace(a["start"], a["stop"], a["num"]))  # type: ignore[no-any-return]
    if method == "logspace":
        with np.errstate(all="ignore"):
            return plain(np.logspace(a["start"], a["stop"], a["num"], base=a.get("base", 10)))  # type: ignore[no-any-return]
    if method == "geomspace":
        with np.errstate(all="ignore"):
            return plain(np.geomspace(a["start"], a["stop"], a["num"]))  # type: ignore[no-any-return]
    if method == "daterange":
        d0, d1 = _dt.date.fromisoformat(a["start"]), _dt.date.fromisoformat(a["stop"])
        days = int(a["step"])
        count = -(-(d1 - d0).days // days)
        return [(d0 + _dt.timedelta(days=days * i)).isoformat() for i in range(count)]
    if method == "datetimerange":
        t0, t1 = _dt.datetime.fromisoformat(a["start"]), _dt.datetime.fromisoformat(a["stop"])
        step_us = int(a["step"]) * 1_000_000
        count = -(-((t1 - t0) // _dt.timedelta(microseconds=1)) // step_us)
        return [(t0 + _dt.timedelta(microseconds=step_us * i)).isoformat() for i in range(count)]
    raise ValueError(f"{method} is not a range method")


def _build_table(method: str, a: Mapping[str, Any]) -> _Table:
    if method == "values":
        raw: list[Any] = list(a["values"])
        raw_probs: list[float] | None = None
    elif method == "pvalues":
        raw = [v for v, _ in a["pvalues"]]
        head = [float(p) for _, p in a["pvalues"][:-1]]
        raw_probs = [*head, max(0.0, 1.0 - sum(head))]
    else:
        raw = _materialize(method, a)
        raw_probs = None
    positions: dict[Hashable, int] = {}
    values: list[Any] = []
    probs: list[float] = []
    for i, value in enumerate(raw):
        key = _value_key(value)
        j = positions.get(key)
        if j is None:
            positions[key] = len(values)
            values.append(value)
            probs.append(raw_probs[i] if raw_probs is not None else 0.0)
        elif raw_probs is not None:
            probs[j] += raw_probs[i]
    if raw_probs is None and values:
        probs = [1.0 / len(values)] * len(values)
    return _Table(values, probs, positions, len(raw))


@dataclass(frozen=True)
class Param:
    """One matrix entry, validated. ``args`` holds the method's named fields."""

    name: str
    method: str
    args: Mapping[str, Any]
    key_path: str = ""
    warnings: tuple[str, ...] = field(default=(), compare=False)

    # ----- classification (SEMANTICS.md §2.4) -------------------------------------------------
    @property
    def is_continuous(self) -> bool:
        return self.method in CONTINUOUS_METHODS

    @property
    def is_discrete(self) -> bool:
        return not self.is_continuous

    @property
    def is_distribution(self) -> bool:
        return self.is_continuous or self.method == "pvalues"

    @property
    def is_range(self) -> bool:
        return self.method in RANGE_METHODS

    @property
    def is_log(self) -> bool:
        return self.method in LOG_METHODS

    @property
    def is_categorical(self) -> bool:
        if self.method not in ("values", "pvalues"):
            return self.method in DATE_METHODS
        return any(not _is_number(v) for v in self.values)

    @property
    def is_quantized(self) -> bool:
        return self.method.startswith("q")

    @property
    def is_bounded(self) -> bool:
        """False for the normal family, whose support is unbounded."""
        return self.is_discrete or self.method in _UNIFORM_FAMILY

    # ----- discrete values -----------------------------------------------------------------
    @cached_property
    def _table(self) -> _Table:
        if self.is_continuous:
            raise ValueError(
                f"{self.name}: {self.method} is continuous and has no finite list of values"
            )
        return _build_table(self.method, self.args)

    @property
    def values(self) -> list[Any]:
        """The distinct materialized values of a discrete parameter, in order, as plain Python
        values (do not mutate the list; configurations get copies)."""
        return self._table.values

    @property
    def size(self) -> int | None:
        """Number of distinct choices, or None for a continuous distribution."""
        return None if self.is_continuous else len(self.values)

    @property
    def probabilities(self) -> list[float]:
        """Effective probability of each value (numpy's multinomial rule for ``pvalues``)."""
        return list(self._table.probabilities)

    @cached_property
    def _cdf(self) -> npt.NDArray[np.float64]:
        return np.cumsum(np.asarray(self._table.probabilities, dtype=np.float64))

    def position(self, value: Any) -> int | None:
        """The index of ``value`` in ``values`` (compared by JSON form), or None."""
        if self.is_continuous:
            return None
        return self._table.positions.get(_value_key(value))

    # ----- sampling ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        """One draw from this parameter, as a plain Python value."""
        if self.method == "pvalues":
            # One uniform draw located in the cumulative probabilities (what Generator.choice
            # does with ``p=``, without re-validating ``p`` at every draw).
            cdf = self._cdf
            index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            return _copy(self.values[min(index, len(cdf) - 1)])
        if self.is_discrete:
            return _copy(self.values[int(rng.integers(len(self.values)))])
        return self.transform(self.draw_underlying(rng))

    def draw_underlying(self, rng: np.random.Generator) -> float:
        """The raw draw before ``exp``/quantization: U(low, high) or N(loc, scale).

        U is ``low + (high - low) * random()`` (``RandomState.uniform``'s formula, which also
        accepts ``low > high`` as Polyaxon does); N is clipped to ``loc ± SIGMAS·scale``.
        """
        a = self.args
        if self.method in _UNIFORM_FAMILY:
            low, high = float(a["low"]), float(a["high"])
            return low + (high - low) * float(rng.random())
        loc, scale = float(a["loc"]), float(a["scale"])
        x = float(rng.normal(loc, scale))
        return min(max(x, loc - SIGMAS * scale), loc + SIGMAS * scale)

    def transform(self, draw: float) -> float:
        """Map an underlying draw to the parameter's value (``exp``, then ``floor(x/q)*q``)."""
        x = float(draw)
        if self.method in LOG_METHODS:
            x = _exp(x)
        if self.is_quantized and math.isfinite(x):
            q = float(self.args["q"])
            x = (x // q) * q
        return x

    # ----- bounds and descriptions -------------------------------------------------------------
    def _q_floor(self, x: float) -> float:
        q = float(self.args["q"])
        return (x // q) * q

    def bounds(self) -> tuple[float, float] | None:
        """The range of values (real values, not exponents; for ``q*`` methods the effective
        range after flooring), or None when unbounded or categorical."""
        if self.is_categorical:
            return None
        if self.is_discrete:
            try:
                vals = [float(v) for v in self.values]
            except (TypeError, ValueError, OverflowError):
                return None
            return (min(vals), max(vals))
        a = self.args
        if self.method in _UNIFORM_FAMILY:
            lo, hi = sorted((float(a["low"]), float(a["high"])))
            if self.method in ("loguniform", "qloguniform"):
                lo, hi = _exp(lo), _exp(hi)
            if self.is_quantized:
                lo = self._q_floor(lo)
            return (lo, hi)
        return None

    def describe(self) -> str:
        """The method as written and the *effective* domain, e.g. ``loguniform [-9.2, -2.3] → …``."""
        m, a = self.method, self.args
        if m == "values":
            vals = self.values
            shown = ", ".join(show_value(v, 30) for v in vals[:8]) + (
                ", …" if len(vals) > 8 else ""
            )
            return f"values [{shown}] ({len(vals)} values)"
        if m == "pvalues":
            parts = [
                f"{show_value(v, 30)}: {p:.3g}"
                for v, p in zip(self.values, self.probabilities, strict=True)
            ]
            return f"pvalues → P({', '.join(parts)})"
        if self.is_range:
            spec = ":".join(str(a[k]) for k in _FIELDS[m][0] if k in a)
            vals = self.values
            if len(vals) <= 6:
                shown = ", ".join(_fmt(v) for v in vals)
            else:
                shown = f"{_fmt(vals[0])}, {_fmt(vals[1])} … {_fmt(vals[-1])}"
            return f"{m} {spec} → {len(vals)} values: {shown}"
        q = f", q={_fmt(a['q'])}" if "q" in a else ""
        if m in _UNIFORM_FAMILY:
            b = self.bounds()
            assert b is not None
            log_note = " (natural-log bounds)" if m in ("loguniform", "qloguniform") else ""
            head = f"{m} [{_fmt(a['low'])}, {_fmt(a['high'])}{q}]{log_note}"
            if self.is_quantized:
                return f"{head} → multiples of {_fmt(a['q'])} in [{_fmt(b[0])}, {_fmt(b[1])}]"
            return f"{head} → values in [{_fmt(b[0])}, {_fmt(b[1])})"
        head = f"{m} loc={_fmt(a['loc'])} scale={_fmt(a['scale'])}{q}"
        multiples = f"multiples of {_fmt(a['q'])}, " if self.is_quantized else ""
        if m in ("normal", "qnormal"):
            return f"{head} → {multiples}unbounded, mean {_fmt(a['loc'])}"
        median = _exp(float(a["loc"]))
        return f"{head} → {multiples}positive, median {_fmt(median)}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description for ``check --json``."""
        out: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "args": plain(dict(self.args)),
            "kind": "continuous" if self.is_continuous else "discrete",
            "categorical": self.is_categorical,
            "domain": self.describe(),
        }
        if self.is_discrete:
            out["values"] = plain(self.values)
            out["size"] = self.size
            if self.method == "pvalues":
                out["probabilities"] = self.probabilities
        b = self.bounds()
        if b is not None:
            out["bounds"] = list(b)
        return out


@dataclass(frozen=True)
class Space:
    """An ordered set of parameters (declaration order is grid order: last varies fastest)."""

    params: tuple[Param, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def is_discrete(self) -> bool:
        return all(p.is_discrete for p in self.params)

    @property
    def size(self) -> int | None:
        """Number of distinct configurations, or None when a parameter is continuous."""
        if not self.is_discrete:
            return None
        return math.prod(p.size or 0 for p in self.params)

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every configuration, cartesian product in declaration order, last key fastest."""
        names = self.names
        for combo in itertools.product(*(p.values for p in self.params)):
            yield {n: _copy(v) for n, v in zip(names, combo, strict=True)}

    def point(self, index: int) -> dict[str, Any]:
        """The ``index``-th configuration of ``grid()`` (0-based), by mixed-radix decoding: no
        enumeration, so it is as cheap for the billionth point as for the first."""
        size = self.size
        if size is None:
            raise ValueError("a space with a continuous parameter has no grid")
        if not 0 <= index < size:
            raise IndexError(f"grid index {index} out of range (size {size})")
        out: dict[str, Any] = {}
        for p in reversed(self.params):
            index, digit = divmod(index, len(p.values))
            out[p.name] = _copy(p.values[digit])
        return {name: out[name] for name in self.names}

    def index_of(self, config: Mapping[str, Any]) -> int | None:
        """The grid index of ``config`` (inverse of ``point``), or None when it is not a grid point
        of this space. Values compare by JSON form; keys outside the space are ignored."""
        if not self.is_discrete:
            return None
        index = 0
        for p in self.params:
            if p.name not in config:
                return None
            pos = p.position(config[p.name])
            if pos is None:
                return None
            index = index * len(p.values) + pos
        return index

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration: each parameter drawn independently, in declaration order."""
        return {p.name: p.sample(rng) for p in self.params}

    @staticmethod
    def config_key(config: Mapping[str, Any]) -> str:
        """See the module-level ``config_key``."""
        return _config_key(config)

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.params]


_config_key = config_key

# ======================================================================================
# Parsing
# ======================================================================================


def _number(text: str, key_path: str, method: str, field_name: str) -> int | float:
    """One part of an ``"a:b:c"`` spelling: an int when it reads as one (Polyaxon kept ``1`` an
    int and ``1.0`` a float), else a float."""
    s = text.strip()
    try:
        return int(s, 0)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        raise ConfigError(key_path, f"{method} {field_name} must be a number", text) from None


def _check_number(value: Any, key_path: str, method: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key_path, f"{method} {name} must be a number", value)
    try:
        as_float = float(value)
    except OverflowError:
        raise ConfigError(key_path, f"{method} {name} is too large", value) from None
    if not math.isfinite(as_float):
        raise ConfigError(key_path, f"{method} {name} must be finite", value)


def _split_spec(method: str, raw: Any, key_path: str, *, v2: bool) -> dict[str, Any]:
    """The three spellings (``"a:b:c"``, ``[a, b, c]``, ``{start: a, ...}``) → named fields."""
    names, required = _FIELDS[method]
    is_date = method in DATE_METHODS
    if isinstance(raw, str):
        if is_date:
            raise ConfigError(
                key_path, f"{method} takes a list or mapping of [start, stop, step]", raw
            )
        pieces = raw.split(":")
        parts: list[Any] = [
            _number(p, key_path, method, n) for p, n in zip(pieces, names, strict=False)
        ] + pieces[len(names) :]
    elif isinstance(raw, list | tuple):
        parts = list(raw)
    elif isinstance(raw, dict):
        unknown = [k for k in raw if k not in names]
        if unknown:
            raise ConfigError(
                key_path,
                f"unknown field {show_value(unknown[0], 40)} for {method}; expected {', '.join(names)}",
                raw,
            )
        missing = [n for n in names[:required] if n not in raw]
        if missing:
            raise ConfigError(key_path, f"{method} requires {', '.join(missing)}", raw)
        parts = [raw[n] for n in names if n in raw]
    else:
        raise ConfigError(
            key_path,
            f"{method} takes a list, a 'a:b:c' string or a mapping of {', '.join(names)}",
            raw,
        )
    if not required <= len(parts) <= len(names):
        expected = str(required) if required == len(names) else f"{required} or {len(names)}"
        raise ConfigError(
            key_path,
            f"{method} requires {expected} elements ({', '.join(names)}), received {len(parts)}",
            raw,
        )
    out: dict[str, Any] = {}
    for name, value in zip(names, parts, strict=False):
        if is_date and name in ("start", "stop"):
            out[name] = _date(value, key_path, method, name)
            continue
        _check_number(value, key_path, method, name)
        if v2 and name in _V2_FLOAT_FIELDS:
            value = float(value)
        out[name] = value
    return out


def _date(value: Any, key_path: str, method: str, name: str) -> str:
    """A date (``daterange``) or naive datetime (``datetimerange``) as a normalized ISO string."""
    want_datetime = method == "datetimerange"
    parsed: _dt.date
    if isinstance(value, _dt.datetime):
        parsed = value if want_datetime else value.date()
    elif isinstance(value, _dt.date):
        parsed = _dt.datetime.combine(value, _dt.time()) if want_datetime else value
    elif isinstance(value, str):
        try:
            parsed = (_dt.datetime if want_datetime else _dt.date).fromisoformat(value.strip())
        except ValueError:
            kind = "an ISO date-time" if want_datetime else "an ISO date (YYYY-MM-DD)"
            raise ConfigError(key_path, f"{method} {name} must be {kind}", value) from None
    else:
        raise ConfigError(key_path, f"{method} {name} must be an ISO date", value)
    if isinstance(parsed, _dt.datetime) and parsed.tzinfo is not None:
        raise ConfigError(key_path, f"{method} {name} must not carry a time zone", value)
    return parsed.isoformat()


def _too_many(key_path: str, method: str, count: int | float) -> ConfigError:
    shown = f"{count:.3g}" if count < 1e15 else "too many"
    if isinstance(count, int) and count < 1e15:
        shown = str(count)
    return ConfigError(
        key_path, f"{method} has {shown} values, more than polytune allows ({MAX_MATERIALIZED})"
    )


def _check_range(method: str, a: dict[str, Any], key_path: str) -> None:
    third = "step" if method in ("range", *DATE_METHODS) else "num"
    if method in DATE_METHODS:
        cls = _dt.datetime if method == "datetimerange" else _dt.date
        d0, d1 = cls.fromisoformat(a["start"]), cls.fromisoformat(a["stop"])
        if not d0 < d1:
            raise ConfigError(
                key_path,
                f"{method} stop must be strictly after start (got start={a['start']}, stop={a['stop']})",
            )
    else:
        start, stop = a["start"], a["stop"]
        if not start < stop:
            raise ConfigError(
                key_path,
                f"{method} stop must be strictly above start (got start={start}, stop={stop})",
            )
        if not math.isfinite(float(stop) - float(start)):
            raise ConfigError(
                key_path,
                f"{method} start and stop are too far apart (got start={start}, stop={stop})",
            )
    if a[third] == 0:
        raise ConfigError(key_path, f"{method} {third} cannot be 0", a[third])
    if third == "step" and a["step"] < 0:
        raise ConfigError(key_path, f"{method} step must be positive when start < stop", a["step"])
    if third == "num":
        num = a["num"]
        if isinstance(num, float):
            if not num.is_integer():
                raise ConfigError(key_path, f"{method} num must be a whole number", num)
            a["num"] = int(num)
        if a["num"] < 1:
            raise ConfigError(key_path, f"{method} num must be at least 1", num)
        if a["num"] > MAX_MATERIALIZED:
            raise _too_many(key_path, method, a["num"])
    if method in DATE_METHODS:
        step = a["step"]
        if isinstance(step, float):
            if not step.is_integer():
                raise ConfigError(key_path, f"{method} step must be a whole number", step)
            a["step"] = step = int(step)
        if method == "daterange":
            span = (_dt.date.fromisoformat(a["stop"]) - _dt.date.fromisoformat(a["start"])).days
        else:
            delta = _dt.datetime.fromisoformat(a["stop"]) - _dt.datetime.fromisoformat(a["start"])
            span = math.ceil(delta / _dt.timedelta(seconds=1))
        count = -(-span // step)
        if count > MAX_MATERIALIZED:
            raise _too_many(key_path, method, count)
        return
    if method == "range":
        start, stop, step = a["start"], a["stop"], a["step"]
        if all(type(x) is int for x in (start, stop, step)):
            length: int | float = -((start - stop) // step)
        else:
            length = (float(stop) - float(start)) / float(step)
            length = math.ceil(length) if math.isfinite(length) else length
        if length > MAX_MATERIALIZED:
            raise _too_many(key_path, method, length)
    if method == "geomspace" and (a["start"] == 0 or (a["start"] < 0) != (a["stop"] < 0)):
        raise ConfigError(
            key_path,
            f"geomspace start and stop must be non-zero and of the same sign (got start={a['start']}, stop={a['stop']})",
        )
    if method == "logspace":
        base = a.setdefault("base", 10)
        if base <= 0:
            raise ConfigError(key_path, "logspace base must be positive", base)
        with np.errstate(all="ignore"):
            ends = [float(np.power(float(base), float(e))) for e in (a["start"], a["stop"])]
        if not all(math.isfinite(x) for x in ends):
            raise ConfigError(
                key_path,
                f"logspace overflows: {base}**{a['start']} … {base}**{a['stop']} is not finite",
            )


def _check_distribution(method: str, a: dict[str, Any], key_path: str) -> list[str]:
    """Validate a continuous distribution so that every draw fits a float; return warnings."""
    warnings: list[str] = []
    if "size" in a:
        warnings.append(
            f"{key_path}: the 'size' element ({a.pop('size')!r}) is ignored by polytune"
        )
    if "q" in a and a["q"] <= 0:
        raise ConfigError(key_path, f"{method} q must be positive", a["q"])
    if "scale" in a and a["scale"] < 0:
        raise ConfigError(key_path, f"{method} scale must not be negative", a["scale"])
    # ``extent``: the largest magnitude a value can take (before quantization).
    if method in _UNIFORM_FAMILY:
        low, high = float(a["low"]), float(a["high"])
        if not math.isfinite(high - low):
            raise ConfigError(
                key_path,
                f"{method} low and high are too far apart (got low={a['low']}, high={a['high']})",
            )
        if low > high:
            warnings.append(
                f"{key_path}: {method} low ({a['low']}) is above high ({a['high']}); values are drawn between them"
            )
        if method in ("loguniform", "qloguniform"):
            if max(low, high) > 700:
                raise ConfigError(
                    key_path,
                    f"{method} bounds are natural-log exponents; exp({max(a['low'], a['high'])}) overflows",
                )
            extent = _exp(max(low, high))
            if min(low, high) > 0 and max(low, high) >= 1:
                lo, hi = min(a["low"], a["high"]), max(a["low"], a["high"])
                warnings.append(
                    f"{key_path}: {method} bounds are natural-log exponents: [{lo}, {hi}] means values in "
                    f"[{_fmt(_exp(lo))}, {_fmt(_exp(hi))}); for values in [{lo}, {hi}] write "
                    f"[{_fmt(math.log(lo))}, {_fmt(math.log(hi))}]"
                )
        else:
            extent = max(abs(low), abs(high))
    else:
        loc, scale = float(a["loc"]), float(a["scale"])
        reach = abs(loc) + SIGMAS * scale
        if not math.isfinite(reach):
            raise ConfigError(
                key_path,
                f"{method} values overflow a float (got loc={a['loc']}, scale={a['scale']})",
            )
        if method in ("lognormal", "qlognormal"):
            if loc + SIGMAS * scale > _MAX_EXP:
                raise ConfigError(
                    key_path,
                    f"{method} loc and scale are those of the underlying normal; exp(loc + {SIGMAS:g}·scale) "
                    f"overflows a float (got loc={a['loc']}, scale={a['scale']})",
                )
            extent = _exp(loc + SIGMAS * scale)
        else:
            extent = reach
    if "q" in a and not math.isfinite(extent / float(a["q"])):
        raise ConfigError(key_path, f"{method} q is too small for the range of values", a["q"])
    return warnings


def _parse_pvalues(raw: Any, key_path: str) -> tuple[list[list[Any]], list[str]]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(key_path, "pvalues takes a non-empty list of [value, probability]", raw)
    items: list[list[Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ConfigError(f"{key_path}[{i}]", "expected a [value, probability] pair", item)
        value, p = item
        if not isinstance(p, float) or not 0.0 <= p < 1.0:
            raise ConfigError(f"{key_path}[{i}]", "probability must be a float with 0 <= p < 1", p)
        items.append([plain(value), p])
    total = sum(p for _, p in items)
    if total > 1.0 + 1e-9:
        raise ConfigError(
            key_path, f"probabilities must sum to at most 1 (they sum to {total:.6g})"
        )
    warnings: list[str] = []
    if abs(total - 1.0) > 1e-9:
        head = sum(p for _, p in items[:-1])
        warnings.append(
            f"{key_path}: probabilities sum to {total:.6g}, not 1; as in Polyaxon the last value "
            f"{show_value(items[-1][0], 40)} gets the remaining {1 - head:.6g}"
        )
    return items, warnings


def _check_logspace_warning(a: dict[str, Any], key_path: str) -> list[str]:
    start, stop, base = a["start"], a["stop"], a.get("base", 10)
    if 0 < start < 1 and 0 < stop <= 1 and base > 0 and base != 1:
        return [
            f"{key_path}: logspace {start}:{stop} means values {_fmt(base**start)} … {_fmt(base**stop)} "
            f"(start/stop are exponents of {base}); for {start} … {stop} write "
            f"logspace {_fmt(math.log(start, base))}:{_fmt(math.log(stop, base))}:{a['num']}"
        ]
    return []


def _duplicates_warning(method: str, path: str, table: _Table) -> list[str]:
    dropped = table.raw_count - len(table.values)
    if not dropped:
        return []
    if method == "pvalues":
        return [f"{path}: {dropped} repeated value(s) merged, their probabilities added"]
    if method == "values":
        return [
            f"{path}: {dropped} repeated value(s) dropped; each distinct value is run once by a grid "
            "and drawn with equal probability by random search"
        ]
    return [
        f"{path}: {method} gives only {len(table.values)} distinct values out of {table.raw_count} "
        "(float rounding); the repeats are dropped"
    ]


def parse_param(name: str, spec: Any, key_path: str) -> Param:
    """Parse one matrix entry in either the v0 form (``{range: ...}``) or the v1/v2 form
    (``{kind: range, value: ...}``); ``key_path`` locates it in the YAML for messages.

    Raises ``ConfigError`` (and nothing else) for any invalid input.
    """
    if not isinstance(spec, dict):
        raise ConfigError(
            key_path,
            "a matrix entry must be a mapping such as {values: [...]} or {kind: ..., value: ...}",
            spec,
        )
    v2 = "kind" in spec
    if v2:
        kind = spec.get("kind")
        extra = [k for k in spec if k not in ("kind", "value")]
        if extra:
            raise ConfigError(
                f"{key_path}.{_key_text(extra[0])}",
                "unknown key; a v1/v2 param has only kind and value",
            )
        if not isinstance(kind, str):
            raise ConfigError(f"{key_path}.kind", "must be a method name", kind)
        method = ALIASES.get(kind.lower(), kind.lower())
        if method not in METHODS:
            raise ConfigError(
                f"{key_path}.kind",
                f"unknown kind; expected one of {', '.join(['choice', 'pchoice', *METHODS[2:]])}",
                kind,
            )
        if "value" not in spec:
            raise ConfigError(f"{key_path}.value", "is required")
        raw = spec["value"]
        path = f"{key_path}.value"
    else:
        keys = [k for k in spec if not (k == "values" and spec[k] in ([], None))]
        if len(keys) != 1:
            listed = ", ".join(_key_text(k) for k in keys) if keys else "none"
            raise ConfigError(
                key_path,
                f"a matrix entry needs exactly one method (values, pvalues, range, linspace, logspace, "
                f"geomspace, uniform, quniform, loguniform, qloguniform, normal, qnormal, lognormal, "
                f"qlognormal); found {listed}",
            )
        key = keys[0]
        method = ALIASES.get(str(key), str(key))
        if method not in METHODS:
            from polytune.suggest import closest

            hint = closest(str(key), [*METHODS, *ALIASES])
            raise ConfigError(
                f"{key_path}.{_key_text(key)}",
                "unknown matrix method" + (f"; did you mean {hint!r}?" if hint else ""),
            )
        raw = spec[key]
        path = f"{key_path}.{_key_text(key)}"
    warnings: list[str] = []
    args: dict[str, Any]
    if method == "values":
        if not isinstance(raw, list | tuple) or not raw:
            raise ConfigError(path, "values takes a non-empty list", raw)
        try:
            args = {"values": [plain(v) for v in raw]}
        except RecursionError:
            raise ConfigError(path, "values are nested too deeply") from None
    elif method == "pvalues":
        try:
            items, warnings = _parse_pvalues(raw, path)
        except RecursionError:
            raise ConfigError(path, "values are nested too deeply") from None
        args = {"pvalues": items}
    else:
        args = _split_spec(method, raw, path, v2=v2)
        if method in RANGE_METHODS:
            _check_range(method, args, path)
            if method == "logspace":
                warnings = _check_logspace_warning(args, path)
        else:
            warnings = _check_distribution(method, args, path)
    table: _Table | None = None
    if method in DISCRETE_METHODS:
        try:
            table = _build_table(method, args)
        except RecursionError:
            raise ConfigError(path, "values are nested too deeply") from None
        if method in RANGE_METHODS and method not in DATE_METHODS:
            bad = next((v for v in table.values if not math.isfinite(v)), None)
            if bad is not None:
                raise ConfigError(path, f"{method} produces a value that does not fit a float", bad)
        if method in RANGE_METHODS and not table.values:  # cannot happen after the checks above
            raise ConfigError(path, f"{method} produces no values", raw)
        warnings.extend(_duplicates_warning(method, path, table))
    param = Param(name=name, method=method, args=args, key_path=key_path, warnings=tuple(warnings))
    if table is not None:
        param.__dict__["_table"] = table  # seed the cached_property: materialize once
    return param


def space_from_matrix(matrix: Any, key_path: str) -> Space:
    """Parse a whole matrix mapping ``{name: spec}`` (declaration order kept)."""
    if not isinstance(matrix, dict):
        raise ConfigError(
            key_path, "the matrix must be a mapping of parameter names to methods", matrix
        )
    params = []
    for name, spec in matrix.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(key_path, "parameter names must be non-empty strings", name)
        params.append(parse_param(name, spec, f"{key_path}.{_key_text(name)}"))
    return Space(tuple(params))
