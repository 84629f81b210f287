"""Hypothesis strategies for polytune's search spaces, shared by every test module.

Valid input (what a polyaxonfile may hold, already loaded from YAML):

* ``matrix_entry(methods=..., layouts=..., max_values=...)``: one valid matrix entry, in every
  method and spelling: the v0 form ``{range: ...}`` (also the v1 spellings ``choice``/``pchoice``
  as keys) and the v1/v2 form ``{kind: range, value: ...}``; each value as a list, an
  ``"a:b:c"`` string or a mapping of named fields; with the optional ``size``/``base`` elements.
* ``matrices(...)``: a whole matrix ``{name: entry}`` (names unique, declaration order kept).
* ``spaces(...)``: the parsed ``Space`` of such a matrix.
* ``GRID_METHODS`` / ``DISTRIBUTION_METHODS``: method subsets that grid search / random search
  accept (pass them as ``methods=``).

Invalid input, for "never crashes" properties:

* ``garbage_specs()``: anything YAML can load in place of a matrix entry: dicts with random keys
  and values, strings like ``"1:2:x"``, huge integers, NaN and infinities, nested lists, dates.

Oracles (independent of the sampling code under test):

* ``in_domain(param, value)``: is ``value`` a possible value of ``param``?
* ``is_plain(value)``: only JSON types (never numpy scalars)?
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from hypothesis import strategies as st

from polytune.space import METHODS, Param, Space, space_from_matrix

__all__ = [
    "ALL_METHODS",
    "DISTRIBUTION_METHODS",
    "GRID_METHODS",
    "garbage_specs",
    "in_domain",
    "is_plain",
    "json_values",
    "matrices",
    "matrix_entry",
    "param_names",
    "spaces",
]

ALL_METHODS: tuple[str, ...] = METHODS
GRID_METHODS: tuple[str, ...] = (
    "values",
    "range",
    "linspace",
    "logspace",
    "geomspace",
    "daterange",
    "datetimerange",
)
DISTRIBUTION_METHODS: tuple[str, ...] = (
    "pvalues",
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "normal",
    "qnormal",
    "lognormal",
    "qlognormal",
)
V2_KINDS = {"values": "choice", "pvalues": "pchoice"}
FIELD_NAMES = {
    "range": ("start", "stop", "step"),
    "linspace": ("start", "stop", "num"),
    "logspace": ("start", "stop", "num", "base"),
    "geomspace": ("start", "stop", "num"),
    "daterange": ("start", "stop", "step"),
    "datetimerange": ("start", "stop", "step"),
    "uniform": ("low", "high", "size"),
    "loguniform": ("low", "high", "size"),
    "normal": ("loc", "scale", "size"),
    "lognormal": ("loc", "scale", "size"),
    "quniform": ("low", "high", "q", "size"),
    "qloguniform": ("low", "high", "q", "size"),
    "qnormal": ("loc", "scale", "q", "size"),
    "qlognormal": ("loc", "scale", "q", "size"),
}


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


# ----------------------------------------------------------------------------------------
# Plain JSON-like values (what `values:` may list)
# ----------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    _floats(-1e6, 1e6),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
value_items = st.one_of(
    json_scalars,
    json_scalars,
    json_values,
    st.dates(dt.date(1990, 1, 1), dt.date(2030, 1, 1)),  # YAML loads 2019-06-22 as a date
    st.just(math.nan),
)


# ----------------------------------------------------------------------------------------
# Valid fields per method
# ----------------------------------------------------------------------------------------


@st.composite
def _range_fields(draw: st.DrawFn, max_values: int) -> list[Any]:
    n = draw(st.integers(1, max_values))
    if draw(st.booleans()):
        start = draw(st.integers(-1000, 1000))
        step = draw(st.integers(1, 50))
        return [start, start + step * (n - 1) + draw(st.integers(1, step)), step]
    start_f = draw(_floats(-100, 100))
    step_f = draw(_floats(0.01, 10))
    # A float arange may give one value more than n (numpy's length rule): at most max_values.
    return [start_f, start_f + step_f * max(1, n - 1), step_f]


@st.composite
def _space_fields(draw: st.DrawFn, method: str, max_values: int) -> list[Any]:
    num: int | float = draw(st.integers(1, max_values))
    if draw(st.integers(0, 5)) == 0:
        num = float(num)  # a whole float is accepted as num
    if method == "linspace":
        start = draw(st.integers(-100, 100) | _floats(-100, 100))
        return [start, start + draw(_floats(0.001, 100)), num]
    if method == "logspace":
        start_f = draw(_floats(-6, 3))
        fields: list[Any] = [start_f, start_f + draw(_floats(0.01, 4)), num]
        if draw(st.booleans()):
            fields.append(draw(st.sampled_from([2, 10, 2.5, 0.5, math.e, 1])))
        return fields
    low = draw(_floats(1e-3, 1e3))
    high = low * draw(_floats(1.001, 1e4))
    if draw(st.booleans()):
        return [low, high, num]
    return [-high, -low, num]


@st.composite
def _date_fields(draw: st.DrawFn, method: str, max_values: int) -> list[Any]:
    n = draw(st.integers(1, max_values))
    if method == "daterange":
        step = draw(st.integers(1, 5))
        start = draw(st.dates(dt.date(2000, 1, 1), dt.date(2030, 1, 1)))
        stop = start + dt.timedelta(days=step * (n - 1) + draw(st.integers(1, step)))
        spell = draw(st.sampled_from(["iso", "date"]))
        if spell == "iso":
            return [start.isoformat(), stop.isoformat(), step]
        return [start, stop, step]
    step = draw(st.integers(1, 7200))
    start_t = draw(st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)))
    start_t = start_t.replace(microsecond=0)
    stop_t = start_t + dt.timedelta(seconds=step * (n - 1) + draw(st.integers(1, step)))
    spell = draw(st.sampled_from(["iso", "space", "datetime"]))
    if spell == "iso":
        return [start_t.isoformat(), stop_t.isoformat(), step]
    if spell == "space":
        return [start_t.isoformat(sep=" "), stop_t.isoformat(sep=" "), float(step)]
    return [start_t, stop_t, step]


@st.composite
def _distribution_fields(draw: st.DrawFn, method: str) -> list[Any]:
    base = method[1:] if method.startswith("q") else method
    if base == "uniform":
        fields: list[Any] = [draw(_floats(-1e3, 1e3)), draw(_floats(-1e3, 1e3))]
    elif base == "loguniform":
        fields = [draw(_floats(-12, 6)), draw(_floats(-12, 6))]
    elif base == "normal":
        fields = [draw(_floats(-100, 100)), draw(_floats(0, 10))]
    else:
        fields = [draw(_floats(-5, 5)), draw(_floats(0, 3))]
    if draw(st.booleans()):
        fields = [int(x) if float(x).is_integer() else x for x in fields]
    if method.startswith("q"):
        fields.append(draw(_floats(0.01, 10) | st.integers(1, 5)))
    if draw(st.integers(0, 7)) == 0:
        fields.append(draw(st.integers(1, 3)))  # the ignored `size` element
    return fields


@st.composite
def _pvalues_items(draw: st.DrawFn, max_values: int) -> list[list[Any]]:
    k = draw(st.integers(1, min(max_values, 5)))
    values = draw(st.lists(value_items, min_size=k, max_size=k))
    weights = draw(st.lists(_floats(0, 1), min_size=k, max_size=k))
    total = draw(_floats(0.3, 1.0))
    scale = sum(weights)
    probs = [total * w / scale for w in weights] if scale > 0 else [total / k] * k
    probs = [min(float(p), 0.99) for p in probs]
    return [[v, p] for v, p in zip(values, probs, strict=True)]


def _text(x: Any) -> str:
    return repr(x) if isinstance(x, float) else str(x)


@st.composite
def _spell(draw: st.DrawFn, method: str, fields: list[Any]) -> Any:
    """A list, an "a:b:c" string or a mapping of named fields."""
    forms = ["list", "dict"]
    if method not in ("daterange", "datetimerange"):
        forms.append("string")
    form = draw(st.sampled_from(forms))
    if form == "list":
        return list(fields)
    if form == "string":
        return ":".join(_text(x) for x in fields)
    return dict(zip(FIELD_NAMES[method], fields, strict=False))


@st.composite
def matrix_entry(
    draw: st.DrawFn,
    methods: tuple[str, ...] = ALL_METHODS,
    layouts: tuple[str, ...] = ("v0", "v2"),
    max_values: int = 20,
) -> dict[str, Any]:
    """One valid matrix entry (as loaded from YAML) of one of ``methods``."""
    method = draw(st.sampled_from(methods))
    layout = draw(st.sampled_from(layouts))
    value: Any
    if method == "values":
        value = draw(st.lists(value_items, min_size=1, max_size=min(max_values, 6)))
    elif method == "pvalues":
        value = draw(_pvalues_items(max_values))
    elif method == "range":
        value = draw(_spell(method, draw(_range_fields(max_values))))
    elif method in ("linspace", "logspace", "geomspace"):
        value = draw(_spell(method, draw(_space_fields(method, max_values))))
    elif method in ("daterange", "datetimerange"):
        value = draw(_spell(method, draw(_date_fields(method, max_values))))
    else:
        value = draw(_spell(method, draw(_distribution_fields(method))))
    if layout == "v0":
        key = method
        if method in V2_KINDS and draw(st.booleans()):
            key = V2_KINDS[method]  # the v1 spellings are accepted as v0 keys too
        return {key: value}
    kind = V2_KINDS.get(method, method)
    if draw(st.integers(0, 9)) == 0:
        kind = kind.capitalize()
    return {"kind": kind, "value": value}


param_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


def matrices(
    methods: tuple[str, ...] = ALL_METHODS,
    min_params: int = 1,
    max_params: int = 4,
    max_values: int = 20,
    layouts: tuple[str, ...] = ("v0", "v2"),
) -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    """A whole matrix ``{name: entry}``."""
    return st.dictionaries(
        param_names,
        matrix_entry(methods=methods, layouts=layouts, max_values=max_values),
        min_size=min_params,
        max_size=max_params,
    )


def spaces(
    methods: tuple[str, ...] = ALL_METHODS,
    min_params: int = 1,
    max_params: int = 4,
    max_values: int = 20,
) -> st.SearchStrategy[Space]:
    """The parsed ``Space`` of a valid matrix."""
    return matrices(methods, min_params, max_params, max_values).map(
        lambda m: space_from_matrix(m, "hptuning.matrix")
    )


# ----------------------------------------------------------------------------------------
# Garbage
# ----------------------------------------------------------------------------------------

_nasty_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64 + 1, 10**308 * 2, 0, -1, 1]),
    st.floats(),  # NaN, ±inf, subnormals, huge
    st.sampled_from([1e308, -1e308, 5e-324, 1e-320, 1e300, -0.0]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "1:2:x",
            "1e999:2:3",
            "nan:1:2",
            "inf:0:1",
            "0:10:1",
            "1:2",
            "-1:1:0",
            "1:2:3:4:5:6",
            "0x10:0x20:2",
            "1_000:2_000:10",
            " : : ",
            "",
            "2019-06-22",
            "2019-06-22 21:00",
            "2019-06-22T21:00+02:00",
            "20190622",
            "True:False:1",
            "-1e308:1e308:1",
            "0:1e308:1e-300",
        ]
    ),
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
_nasty_values = st.recursive(
    _nasty_scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["start", "stop", "step", "num", "base", "low", "high", "q", "loc", "scale", "size"]
            )
            | st.text(max_size=5),
            inner,
            max_size=5,
        )
    ),
    max_leaves=8,
)
_keys = st.sampled_from([*METHODS, "choice", "pchoice", "kind", "value", "size", "Values", "x"])


@st.composite
def _broken_entry(draw: st.DrawFn) -> Any:
    """A valid entry with one element replaced by something nasty."""
    entry = dict(draw(matrix_entry()))
    key = next(iter(entry)) if "kind" not in entry else "value"
    value = entry[key]
    if isinstance(value, list) and value:
        value = list(value)
        value[draw(st.integers(0, len(value) - 1))] = draw(_nasty_values)
        if draw(st.booleans()):
            value.append(draw(_nasty_values))
    elif isinstance(value, dict) and value:
        value = dict(value)
        value[draw(st.sampled_from(sorted(value)))] = draw(_nasty_values)
    else:
        value = draw(_nasty_values)
    entry[key] = value
    return entry


def garbage_specs() -> st.SearchStrategy[Any]:
    """Anything that YAML could put where a matrix entry belongs."""
    return st.one_of(
        _nasty_values,
        st.dictionaries(_keys | st.text(max_size=5) | st.integers(), _nasty_values, max_size=3),
        st.fixed_dictionaries(
            {"kind": st.sampled_from([*METHODS, "choice", "pchoice", "grid"]) | _nasty_scalars},
            optional={"value": _nasty_values, "extra": _nasty_values},
        ),
        st.builds(lambda m, v: {m: v}, _keys, _nasty_values),
        _broken_entry(),
    )


# ----------------------------------------------------------------------------------------
# Oracles
# ----------------------------------------------------------------------------------------


def _json_key(value: Any) -> str:
    from polytune.space import plain

    return json.dumps(plain(value), sort_keys=True, default=str)


def _is_multiple(value: float, q: float) -> bool:
    k = value / q
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def in_domain(param: Param, value: Any) -> bool:
    """Whether ``value`` is a value ``param`` can take (its *effective* domain)."""
    m, a = param.method, param.args
    if param.is_discrete:
        return _json_key(value) in {_json_key(v) for v in param.values}
    if type(value) is not float or not math.isfinite(value):
        return False
    q = float(a["q"]) if "q" in a else None
    if q is not None and not _is_multiple(value, q):
        return False
    base = m[1:] if m.startswith("q") else m
    if base in ("uniform", "loguniform"):
        lo, hi = sorted((float(a["low"]), float(a["high"])))
        if base == "loguniform":
            lo, hi = math.exp(lo), math.exp(hi)
        if q is not None:
            # Python's float // can be one below floor(x / q) (1.0 // 0.1 == 9.0): allow both.
            lo = min(math.floor(lo / q), lo // q) * q
        tol = 1e-12 * max(1.0, abs(lo), abs(hi))
        return lo - tol <= value <= hi + tol
    if base == "lognormal":
        return value >= 0
    return True  # normal / qnormal: any finite value


def is_plain(value: Any) -> bool:
    """Only JSON types all the way down: no numpy scalars, tuples, dates or non-str keys."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False
