"""The search space: Polyaxon's matrix methods, parsed, validated, materialized and sampled.

Pure: data and an explicit ``numpy.random.Generator`` in, plain Python values out.

Numerics follow Polyaxon (SEMANTICS.md §2.3) so that real polyaxonfiles mean what they meant:

* ``range``     = ``numpy.arange(start, stop, step)`` (stop-exclusive, float artefacts included)
* ``linspace``  = ``numpy.linspace(start, stop, num)``
* ``logspace``  = ``numpy.logspace(start, stop, num, base)``: values ``base**start .. base**stop``
* ``geomspace`` = ``numpy.geomspace(start, stop, num)``
* ``loguniform``  = ``exp(U(low, high))``: the bounds are natural-log exponents
* ``q*``        = ``floor(x / q) * q``
* ``pvalues``   = one multinomial draw; the last value gets ``1 - sum(other probabilities)``
* ``qlognormal`` = ``floor(lognormal / q) * q`` (polytune's fix: Polyaxon 0.6.1 exponentiated twice
  and ignored ``q``).

The sampling RNG is numpy's ``Generator`` (not the legacy global ``RandomState``), so draws differ
from Polyaxon's for the same seed while the distributions are the same.
"""

from __future__ import annotations

import ast
import datetime as _dt
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from polytune.errors import ConfigError

__all__ = [
    "CONTINUOUS_METHODS",
    "DISCRETE_METHODS",
    "METHODS",
    "Param",
    "Space",
    "parse_param",
    "plain",
]

# Canonical names are the v0 keys; v1/v2 kinds and the v1 spellings map onto them.
RANGE_METHODS = ("range", "linspace", "logspace", "geomspace", "daterange", "datetimerange")
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

# A grid of more points than this is refused: it would not fit in memory, let alone run.
MAX_MATERIALIZED = 10_000_000

Scalar = int | float | str | bool | None


def plain(value: Any) -> Any:
    """Convert numpy scalars/arrays (also nested in lists/dicts) to plain Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def _is_number(value: Any) -> bool:
    # Polyaxon's categorical test: bool is an int subclass, so it counts as a number.
    return isinstance(value, int | float | np.number) and not (
        isinstance(value, float) and math.isnan(value)
    )


def _fmt(value: float) -> str:
    """Short human form of a number for effective-domain descriptions."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if value == 0 or (1e-3 <= abs(value) < 1e5):
        return f"{value:.4g}"
    return f"{value:.2e}"


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
            return self.method in ("daterange", "datetimerange")
        return any(not _is_number(v) for v in self.values)

    @property
    def is_quantized(self) -> bool:
        return self.method.startswith("q")

    @property
    def is_bounded(self) -> bool:
        """False for the normal family, whose support is unbounded."""
        return self.is_discrete or self.method in ("uniform", "quniform", "loguniform", "qloguniform")

    # ----- discrete values -----------------------------------------------------------------
    @cached_property
    def values(self) -> list[Any]:
        """The materialized values of a discrete parameter, in order, as plain Python values."""
        m, a = self.method, self.args
        if m == "values":
            return list(a["values"])
        if m == "pvalues":
            return [v for v, _ in a["pvalues"]]
        if m == "range":
            return plain(np.arange(a["start"], a["stop"], a["step"]))  # type: ignore[no-any-return]
        if m == "linspace":
            return plain(np.linspace(a["start"], a["stop"], a["num"]))  # type: ignore[no-any-return]
        if m == "logspace":
            return plain(np.logspace(a["start"], a["stop"], a["num"], base=a["base"]))  # type: ignore[no-any-return]
        if m == "geomspace":
            return plain(np.geomspace(a["start"], a["stop"], a["num"]))  # type: ignore[no-any-return]
        if m == "daterange":
            start, stop = np.datetime64(a["start"], "D"), np.datetime64(a["stop"], "D")
            days = np.arange(start, stop, np.timedelta64(int(a["step"]), "D"))
            return [str(d) for d in days]
        if m == "datetimerange":
            start, stop = np.datetime64(a["start"], "s"), np.datetime64(a["stop"], "s")
            secs = np.arange(start, stop, np.timedelta64(int(a["step"]), "s"))
            return [str(d) for d in secs]
        raise ValueError(f"{self.name}: {m} is continuous and has no finite list of values")

    @property
    def size(self) -> int | None:
        """Number of distinct choices, or None for a continuous distribution."""
        return None if self.is_continuous else len(self.values)

    @property
    def probabilities(self) -> list[float]:
        """Effective probabilities of each value (numpy's multinomial rule for ``pvalues``)."""
        n = len(self.values)
        if self.method != "pvalues":
            return [1.0 / n] * n
        ps = [float(p) for _, p in self.args["pvalues"]]
        head = ps[:-1]
        return [*head, max(0.0, 1.0 - sum(head))]

    # ----- sampling ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Any:
        """One draw from this parameter, as a plain Python value."""
        m, a = self.method, self.args
        if m == "pvalues":
            index = int(rng.choice(len(self.values), p=self.probabilities))
            return self.values[index]
        if self.is_discrete:
            return self.values[int(rng.integers(len(self.values)))]
        return self.transform(self.draw_underlying(rng))

    def draw_underlying(self, rng: np.random.Generator) -> float:
        """The raw draw before ``exp``/quantization: U(low, high) or N(loc, scale)."""
        a = self.args
        if self.method in ("uniform", "quniform", "loguniform", "qloguniform"):
            return float(rng.uniform(a["low"], a["high"]))
        return float(rng.normal(a["loc"], a["scale"]))

    def transform(self, draw: float) -> float:
        """Map an underlying draw to the parameter's value (``exp``, then ``floor(x/q)*q``)."""
        m = self.method
        x = math.exp(draw) if m in LOG_METHODS else draw
        if self.is_quantized:
            q = float(self.args["q"])
            x = (x // q) * q
        return float(x)

    # ----- bounds and descriptions -------------------------------------------------------------
    def bounds(self) -> tuple[float, float] | None:
        """The numeric value range (real values, not exponents), or None when unbounded/categorical."""
        if self.is_categorical:
            return None
        if self.is_discrete:
            vals = [float(v) for v in self.values]
            return (min(vals), max(vals))
        a = self.args
        if self.method in ("uniform", "quniform"):
            lo, hi = sorted((float(a["low"]), float(a["high"])))
            return (lo, hi)
        if self.method in ("loguniform", "qloguniform"):
            lo, hi = sorted((float(a["low"]), float(a["high"])))
            return (math.exp(lo), math.exp(hi))
        return None

    def describe(self) -> str:
        """The method as written and the *effective* domain, e.g. ``loguniform [-9.2, -2.3] → …``."""
        m, a = self.method, self.args
        if m == "values":
            vals = self.values
            shown = ", ".join(repr(v) for v in vals[:8]) + (", …" if len(vals) > 8 else "")
            return f"values [{shown}] ({len(vals)} values)"
        if m == "pvalues":
            parts = [f"{v!r}: {p:.3g}" for v, p in zip(self.values, self.probabilities, strict=True)]
            return f"pvalues → P({', '.join(parts)})"
        if self.is_range:
            spec = ":".join(str(a[k]) for k in _FIELDS[m][0] if k in a)
            vals = self.values
            if not vals:
                return f"{m} {spec} → no values"
            if len(vals) <= 6:
                shown = ", ".join(_fmt(v) for v in vals)
            else:
                shown = f"{_fmt(vals[0])}, {_fmt(vals[1])} … {_fmt(vals[-1])}"
            return f"{m} {spec} → {len(vals)} values: {shown}"
        q = f", q={a['q']}" if "q" in a else ""
        if m in ("uniform", "quniform"):
            lo, hi = sorted((a["low"], a["high"]))
            return f"{m} [{_fmt(a['low'])}, {_fmt(a['high'])}{q}] → values in [{_fmt(lo)}, {_fmt(hi)})"
        if m in ("loguniform", "qloguniform"):
            b = self.bounds()
            assert b is not None
            return (
                f"{m} [{_fmt(a['low'])}, {_fmt(a['high'])}{q}] (natural-log bounds)"
                f" → values in [{_fmt(b[0])}, {_fmt(b[1])})"
            )
        if m in ("normal", "qnormal"):
            return f"{m} loc={_fmt(a['loc'])} scale={_fmt(a['scale'])}{q} → unbounded, mean {_fmt(a['loc'])}"
        median = math.exp(float(a["loc"]))
        return f"{m} loc={_fmt(a['loc'])} scale={_fmt(a['scale'])}{q} → positive, median {_fmt(median)}"

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
            yield dict(zip(names, combo, strict=True))

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration: each parameter drawn independently, in declaration order."""
        return {p.name: p.sample(rng) for p in self.params}

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.params]


# ======================================================================================
# Parsing
# ======================================================================================


def _number(text: str, key_path: str, method: str, field_name: str) -> int | float:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ConfigError(key_path, f"{method} {field_name} must be a number", text) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key_path, f"{method} {field_name} must be a number", text)
    return value


def _split_spec(method: str, raw: Any, key_path: str, *, v2: bool) -> dict[str, Any]:
    """The three spellings (``"a:b:c"``, ``[a, b, c]``, ``{start: a, ...}``) → named fields."""
    names, required = _FIELDS[method]
    is_date = method in ("daterange", "datetimerange")
    if isinstance(raw, str):
        if is_date:
            raise ConfigError(
                key_path, f"{method} takes a list or mapping of [start, stop, step]", raw
            )
        parts: list[Any] = raw.split(":")
        parts = [_number(p, key_path, method, n) for p, n in zip(parts, names, strict=False)] + parts[
            len(names) :
        ]
    elif isinstance(raw, list | tuple):
        parts = list(raw)
    elif isinstance(raw, dict):
        unknown = [k for k in raw if k not in names]
        if unknown:
            raise ConfigError(
                key_path,
                f"unknown field {unknown[0]!r} for {method}; expected {', '.join(names)}",
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
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key_path, f"{method} {name} must be a number", value)
        if not math.isfinite(value):
            raise ConfigError(key_path, f"{method} {name} must be finite", value)
        if v2 and name in _V2_FLOAT_FIELDS:
            value = float(value)
        out[name] = value
    return out


def _date(value: Any, key_path: str, method: str, name: str) -> str:
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            (_dt.datetime if method == "datetimerange" else _dt.date).fromisoformat(value)
        except ValueError:
            raise ConfigError(key_path, f"{method} {name} must be an ISO date", value) from None
        return value
    raise ConfigError(key_path, f"{method} {name} must be an ISO date", value)


def _check_range(method: str, a: dict[str, Any], key_path: str) -> None:
    start, stop = a["start"], a["stop"]
    if not start < stop:
        raise ConfigError(
            key_path,
            f"{method} stop must be strictly above start (got start={start}, stop={stop})",
        )
    third = "step" if method in ("range", "daterange", "datetimerange") else "num"
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
            raise ConfigError(key_path, f"{method} num is too large (max {MAX_MATERIALIZED})", num)
    if method in ("daterange", "datetimerange"):
        if isinstance(a["step"], float) and not a["step"].is_integer():
            raise ConfigError(key_path, f"{method} step must be a whole number", a["step"])
        return
    if method == "range":
        length = math.ceil((stop - start) / a["step"])
        if length > MAX_MATERIALIZED:
            raise ConfigError(
                key_path, f"range has {length} values, more than polytune allows ({MAX_MATERIALIZED})"
            )
    if method == "geomspace" and (start == 0 or (start < 0) != (stop < 0)):
        raise ConfigError(
            key_path,
            f"geomspace start and stop must be non-zero and of the same sign (got start={start}, stop={stop})",
        )
    if method == "logspace":
        base = a.setdefault("base", 10)
        if base <= 0:
            raise ConfigError(key_path, "logspace base must be positive", base)
        with np.errstate(all="ignore"):
            top = float(np.power(float(base), float(stop)))
        if not math.isfinite(top):
            raise ConfigError(key_path, f"logspace overflows: {base}**{stop} is not finite")


def _check_distribution(method: str, a: dict[str, Any], key_path: str) -> list[str]:
    warnings: list[str] = []
    if "size" in a:
        warnings.append(f"{key_path}: the 'size' element ({a.pop('size')!r}) is ignored by polytune")
    if "q" in a and a["q"] <= 0:
        raise ConfigError(key_path, f"{method} q must be positive", a["q"])
    if "scale" in a and a["scale"] < 0:
        raise ConfigError(key_path, f"{method} scale must not be negative", a["scale"])
    if "low" in a and a["low"] > a["high"]:
        warnings.append(
            f"{key_path}: {method} low ({a['low']}) is above high ({a['high']}); values are drawn between them"
        )
    if method in ("loguniform", "qloguniform") and max(a["low"], a["high"]) > 700:
        raise ConfigError(key_path, f"{method} bounds are natural-log exponents; exp({max(a['low'], a['high'])}) overflows")
    if method in ("loguniform", "qloguniform") and min(a["low"], a["high"]) > 0 and max(a["low"], a["high"]) >= 1:
        lo, hi = a["low"], a["high"]
        warnings.append(
            f"{key_path}: {method} bounds are natural-log exponents: [{lo}, {hi}] means values in "
            f"[{_fmt(math.exp(lo))}, {_fmt(math.exp(hi))}); for values in [{lo}, {hi}] write "
            f"[{_fmt(math.log(lo))}, {_fmt(math.log(hi))}]"
        )
    return warnings


def _parse_pvalues(raw: Any, key_path: str) -> tuple[list[list[Any]], list[str]]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key_path, "pvalues takes a non-empty list of [value, probability]", raw)
    items: list[list[Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise ConfigError(f"{key_path}[{i}]", "expected a [value, probability] pair", item)
        value, p = item
        if not isinstance(p, float) or not 0.0 <= p < 1.0:
            raise ConfigError(
                f"{key_path}[{i}]", "probability must be a float with 0 <= p < 1", p
            )
        items.append([value, p])
    total = sum(p for _, p in items)
    if total > 1.0 + 1e-9:
        raise ConfigError(key_path, f"probabilities must sum to at most 1 (they sum to {total:.6g})")
    warnings: list[str] = []
    if abs(total - 1.0) > 1e-9:
        head = sum(p for _, p in items[:-1])
        warnings.append(
            f"{key_path}: probabilities sum to {total:.6g}, not 1; as in Polyaxon the last value "
            f"{items[-1][0]!r} gets the remaining {1 - head:.6g}"
        )
    return items, warnings


def _check_logspace_warning(a: dict[str, Any], key_path: str) -> list[str]:
    start, stop, base = a["start"], a["stop"], a.get("base", 10)
    if 0 < start < 1 and 0 < stop <= 1:
        return [
            f"{key_path}: logspace {start}:{stop} means values {_fmt(base**start)} … {_fmt(base**stop)} "
            f"(start/stop are exponents of {base}); for {start} … {stop} write "
            f"logspace {_fmt(math.log(start, base))}:{_fmt(math.log(stop, base))}:{a['num']}"
        ]
    return []


def parse_param(name: str, spec: Any, key_path: str) -> Param:
    """Parse one matrix entry in either the v0 form (``{range: ...}``) or the v1/v2 form
    (``{kind: range, value: ...}``); ``key_path`` locates it in the YAML for messages."""
    if not isinstance(spec, dict):
        raise ConfigError(
            key_path, "a matrix entry must be a mapping such as {values: [...]} or {kind: ..., value: ...}", spec
        )
    v2 = "kind" in spec
    if v2:
        kind = spec.get("kind")
        extra = [k for k in spec if k not in ("kind", "value")]
        if extra:
            raise ConfigError(f"{key_path}.{extra[0]}", "unknown key; a v1/v2 param has only kind and value")
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
            listed = ", ".join(map(str, keys)) if keys else "none"
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
                f"{key_path}.{key}",
                "unknown matrix method" + (f"; did you mean {hint!r}?" if hint else ""),
            )
        raw = spec[key]
        path = f"{key_path}.{key}"
    warnings: list[str] = []
    args: dict[str, Any]
    if method == "values":
        if not isinstance(raw, list) or not raw:
            raise ConfigError(path, "values takes a non-empty list", raw)
        args = {"values": [plain(v) for v in raw]}
    elif method == "pvalues":
        items, warnings = _parse_pvalues(raw, path)
        args = {"pvalues": items}
    else:
        args = _split_spec(method, raw, path, v2=v2)
        if method in RANGE_METHODS:
            _check_range(method, args, path)
            if method == "logspace":
                warnings = _check_logspace_warning(args, path)
        else:
            warnings = _check_distribution(method, args, path)
    param = Param(name=name, method=method, args=args, key_path=key_path, warnings=tuple(warnings))
    if param.is_range and not param.values:
        raise ConfigError(path, f"{method} produces no values", raw)
    return param


def space_from_matrix(matrix: Any, key_path: str) -> Space:
    """Parse a whole matrix mapping ``{name: spec}`` (declaration order kept)."""
    if not isinstance(matrix, dict):
        raise ConfigError(key_path, "the matrix must be a mapping of parameter names to methods", matrix)
    params = []
    for name, spec in matrix.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(key_path, "parameter names must be non-empty strings", name)
        params.append(parse_param(name, spec, f"{key_path}.{name}"))
    return Space(tuple(params))


def config_key(config: Mapping[str, Any]) -> str:
    """A canonical hashable key of a configuration (for de-duplication sets)."""
    import json

    return json.dumps(plain(dict(config)), sort_keys=True, default=str)
