"""The unit-box encoding of a search space for Bayesian optimization.

Notation: a configuration ``c`` (``{name: value}``) is encoded as a row ``x`` of ``width``
columns, each in ``[0, 1]``. Every parameter owns a contiguous slice of columns:

============================  =================  =================================================
parameter                     columns            position of a value
============================  =================  =================================================
``uniform``                   1 (real)           ``(v - lo) / (hi - lo)``
``loguniform``                1 (real)           ``(log v - lo) / (hi - lo)`` (bounds are exponents)
``quniform``                  1 (real, q-grid)   as ``uniform``; decoded to the nearest multiple
``qloguniform``               1 (real, q-grid)   as ``loguniform``; decoded to the nearest multiple
numeric discrete values       1 (ordinal)        linear in the value, or in ``log |v|`` for
                                                 ``logspace``/``geomspace`` and for ``values``
                                                 lists that are evenly spaced in log scale
categorical values            one per value      one-hot; decoded by argmax (ties: first value)
a single allowed value        0                  nothing to learn
============================  =================  =================================================

Why these choices (SEMANTICS.md §4.4 and DESIGN.md §6 for where Polyaxon differs):

* Log-scale parameters are modelled in log space, with their *real* bounds: Polyaxon put the
  exponents of a ``logspace`` into a linear box with the values, so every suggestion collapsed
  onto the smallest value.
* Ordinal parameters keep their order and spacing in one column (a GP can then learn "larger is
  better"); the decoded value is the allowed value nearest to the column, so ``decode(encode(c))
  == c`` for every discrete configuration, exactly.
* Categorical values are one-hot: an unordered set has no meaningful 1-D embedding, and with one
  length scale per column (ARD) the model learns how much each value matters. The acquisition
  optimizer never leaves the one-hot corners (it searches categorical values exhaustively), so
  the relaxation between corners is never decoded.
* ``pvalues`` values of probability 0 can never be drawn (Polyaxon's multinomial rule), so they
  are left out of the allowed values; the probabilities of the others shape the initial design
  (``from_unit``), not the model.
* A boolean is categorical here (Polyaxon counted ``true``/``false`` as numbers).

Pure numpy: no scipy here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from polytune.space import Param, Space, config_key

__all__ = ["Dim", "Encoder"]

FloatArray = npt.NDArray[np.float64]
Kind = Literal["real", "qgrid", "ordinal", "categorical", "fixed"]


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _evenness(points: Sequence[float]) -> float:
    """Coefficient of variation of the gaps between sorted points (0 = evenly spaced)."""
    s = sorted(points)
    gaps = np.diff(np.asarray(s, dtype=np.float64))
    mean = float(gaps.mean())
    if not math.isfinite(mean) or mean <= 0.0:
        return math.inf
    return float(gaps.std() / mean)


@dataclass(frozen=True)
class Dim:
    """How one parameter is encoded: ``kind``, its columns ``[start, start + width)``, and the
    data to map values to positions and back."""

    name: str
    kind: Kind
    start: int
    width: int
    log: bool = False
    lo: float = 0.0  # real / qgrid: the bounds of the underlying draw (exponents when ``log``)
    hi: float = 1.0
    q: float = 1.0  # qgrid: the step; allowed values are float(k) * q for kmin <= k <= kmax
    kmin: float = 0.0
    kmax: float = 0.0
    values: tuple[Any, ...] = ()  # ordinal / categorical / fixed: the allowed values
    probabilities: tuple[float, ...] = ()  # their (renormalized) probabilities
    positions: tuple[float, ...] = ()  # ordinal: each value's column position in [0, 1]
    keys: dict[str, int] = field(default_factory=dict, compare=False)  # value key → index

    # ----- counts -------------------------------------------------------------------------
    @property
    def count(self) -> int | None:
        """Number of allowed values, or None for a real (continuous) parameter."""
        if self.kind == "real":
            return None
        if self.kind == "qgrid":
            return int(self.kmax - self.kmin) + 1
        return len(self.values)

    @property
    def is_discrete(self) -> bool:
        return self.kind in ("ordinal", "categorical", "fixed")

    # ----- real and q-grid positions -------------------------------------------------------
    def _span(self) -> float:
        return self.hi - self.lo

    def _pos_of_underlying(self, u: float) -> float:
        span = self._span()
        if span <= 0.0:
            return 0.5
        return min(1.0, max(0.0, (u - self.lo) / span))

    def _underlying_of_pos(self, x: float) -> float:
        return self.lo + min(1.0, max(0.0, x)) * self._span()

    def _real_value(self, x: float) -> float:
        u = self._underlying_of_pos(x)
        if self.log:
            return math.exp(min(u, 709.0))
        return u

    def _real_pos(self, v: float) -> float:
        if self.log:
            if v <= 0.0:
                return 0.0
            return self._pos_of_underlying(math.log(v))
        return self._pos_of_underlying(v)

    def _q_value(self, k: float) -> float:
        return k * self.q

    def _q_snap(self, x: float) -> float:
        """The multiple ``k`` whose position is nearest ``x`` (ties: the smaller)."""
        raw = self._real_value(x)
        with np.errstate(all="ignore"):
            k0 = math.floor(raw / self.q) if math.isfinite(raw / self.q) else self.kmax
        best_k, best = self.kmin, (math.inf, math.inf)
        for k in (k0 - 1, k0, k0 + 1):
            kk = float(min(max(k, self.kmin), self.kmax))
            v = self._q_value(kk)
            # Two multiples can share position 0 (one floors below the lower bound): then the
            # one nearer the underlying value wins, so that decode(encode(v)) == v.
            d = (abs(self._real_pos(v) - x), abs(v - raw))
            if d < best:
                best_k, best = kk, d
        return best_k

    # ----- the codec -----------------------------------------------------------------------
    def index_of(self, value: Any) -> int | None:
        return self.keys.get(config_key({"v": value}))

    def encode_into(self, value: Any, row: FloatArray) -> None:
        """Write ``value``'s position into ``row[start:start + width]``."""
        if self.width == 0:
            return
        if self.kind in ("real", "qgrid"):
            f = _as_float(value)
            row[self.start] = 0.5 if f is None else self._real_pos(f)
        elif self.kind == "ordinal":
            i = self.index_of(value)
            if i is None:  # not an allowed value (an old experiment): nearest by number
                f = _as_float(value)
                row[self.start] = 0.5 if f is None else self._nearest_position(f)
            else:
                row[self.start] = self.positions[i]
        else:
            row[self.start : self.start + self.width] = 0.0
            i = self.index_of(value)
            if i is not None:
                row[self.start + i] = 1.0

    def _nearest_position(self, f: float) -> float:
        nums = [_as_float(v) for v in self.values]
        diffs = [abs(n - f) if n is not None else math.inf for n in nums]
        return self.positions[int(np.argmin(diffs))]

    def decode_index(self, cols: FloatArray) -> int:
        """The index of the allowed value nearest these columns (discrete kinds)."""
        if self.kind == "fixed":
            return 0
        if self.kind == "ordinal":
            x = float(cols[0])
            return int(np.argmin(np.abs(np.asarray(self.positions) - x)))  # ties: first
        return int(np.argmax(cols))  # categorical; ties: first

    def decode(self, cols: FloatArray) -> Any:
        """The allowed value nearest these columns (a plain Python value)."""
        if self.kind == "real":
            return float(self._real_value(float(cols[0])))
        if self.kind == "qgrid":
            return float(self._q_value(self._q_snap(float(cols[0]))))
        return _copy(self.values[self.decode_index(cols)])

    def snap_into(self, row: FloatArray) -> None:
        """Move ``row``'s columns onto the nearest allowed value (in place)."""
        if self.width == 0 or self.kind == "real":
            return
        cols = row[self.start : self.start + self.width]
        if self.kind == "qgrid":
            row[self.start] = self._real_pos(self._q_value(self._q_snap(float(cols[0]))))
            return
        i = self.decode_index(cols)
        if self.kind == "ordinal":
            row[self.start] = self.positions[i]
        else:
            row[self.start : self.start + self.width] = 0.0
            row[self.start + i] = 1.0

    def set_index(self, row: FloatArray, i: int) -> None:
        """Put allowed value ``i`` into ``row`` (discrete kinds)."""
        if self.kind == "ordinal":
            row[self.start] = self.positions[i]
        elif self.kind == "categorical":
            row[self.start : self.start + self.width] = 0.0
            row[self.start + i] = 1.0

    def from_unit(self, u: float, row: FloatArray) -> None:
        """Map one uniform number in [0, 1) to an allowed value (for the initial design and
        random candidates): reals and q-grids by position, discrete values by the inverse CDF
        of their probabilities."""
        if self.width == 0:
            return
        if self.kind == "real":
            row[self.start] = u
        elif self.kind == "qgrid":
            row[self.start] = u
            self.snap_into(row)
        else:
            cdf = np.cumsum(np.asarray(self.probabilities))
            i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
            self.set_index(row, min(i, len(self.values) - 1))


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _dim_for(param: Param, start: int) -> Dim:
    m, a = param.method, param.args
    if param.is_continuous:
        if m not in ("uniform", "quniform", "loguniform", "qloguniform"):
            raise ValueError(
                f"{param.key_path or param.name}: bayesian optimization cannot search {m} "
                "(unbounded); use uniform, quniform, loguniform, qloguniform or a discrete method"
            )
        lo, hi = sorted((float(a["low"]), float(a["high"])))
        log = m in ("loguniform", "qloguniform")
        if "q" not in a:
            return Dim(param.name, "real", start, 1, log=log, lo=lo, hi=hi)
        q = float(a["q"])
        vlo, vhi = (math.exp(lo), math.exp(hi)) if log else (lo, hi)
        kmin, kmax = float(vlo // q), float(vhi // q)
        if kmax <= kmin:
            value = float(kmin * q)
            return Dim(
                param.name, "fixed", start, 0, values=(value,), probabilities=(1.0,),
                keys={config_key({"v": value}): 0},
            )  # fmt: skip
        return Dim(param.name, "qgrid", start, 1, log=log, lo=lo, hi=hi, q=q, kmin=kmin, kmax=kmax)
    probs = param.probabilities
    pairs = [(v, p) for v, p in zip(param.values, probs, strict=True) if p > 0.0]
    if not pairs:  # cannot happen (probabilities sum to 1), but never divide by zero
        pairs = list(zip(param.values, [1.0] * len(param.values), strict=True))
    values = tuple(v for v, _ in pairs)
    total = sum(p for _, p in pairs)
    probabilities = tuple(p / total for _, p in pairs)
    keys = {config_key({"v": v}): i for i, v in enumerate(values)}
    if len(values) == 1:
        return Dim(
            param.name, "fixed", start, 0, values=values, probabilities=probabilities, keys=keys
        )
    nums = [_as_float(v) for v in values]
    numeric = not param.is_categorical and all(n is not None for n in nums)
    if numeric:
        fnums = [float(n) for n in nums if n is not None]
        if len(set(fnums)) < len(fnums):  # 1 and 1.0 are distinct values at the same place
            numeric = False
    if numeric:
        log = False
        if all(n > 0 for n in fnums) or all(n < 0 for n in fnums):
            logs = [math.log(abs(n)) for n in fnums]
            if m in ("logspace", "geomspace"):
                log = True
            elif m in ("values", "pvalues") and len(fnums) >= 3:
                log = _evenness(logs) < _evenness(fnums)
            points = logs if log else fnums
        else:
            points = fnums
        pmin, pmax = min(points), max(points)
        span = pmax - pmin
        if math.isfinite(span) and span > 0.0:
            positions = tuple((p - pmin) / span for p in points)
        else:  # too wide to subtract: fall back to ranks
            order = np.argsort(points, kind="stable")
            ranks = np.empty(len(points))
            ranks[order] = np.arange(len(points)) / (len(points) - 1)
            positions = tuple(float(r) for r in ranks)
        if len(set(positions)) == len(positions):
            return Dim(
                param.name, "ordinal", start, 1, log=log, values=values,
                probabilities=probabilities, positions=positions, keys=keys,
            )  # fmt: skip
    return Dim(
        param.name, "categorical", start, len(values), values=values,
        probabilities=probabilities, keys=keys,
    )  # fmt: skip


class Encoder:
    """Configurations of ``space`` ↔ rows of the unit box (see the module docstring)."""

    def __init__(self, space: Space) -> None:
        dims: list[Dim] = []
        start = 0
        for param in space.params:
            dim = _dim_for(param, start)
            dims.append(dim)
            start += dim.width
        self.dims: tuple[Dim, ...] = tuple(dims)
        self.width = start
        self.names = [d.name for d in dims]

    # ----- properties ----------------------------------------------------------------------
    @property
    def size(self) -> int | None:
        """Number of distinct configurations BO can suggest, or None when infinite."""
        total = 1
        for d in self.dims:
            c = d.count
            if c is None:
                return None
            total *= c
        return total

    @property
    def real_columns(self) -> list[int]:
        """Columns optimized by gradient (reals and q-grids, which are then snapped)."""
        return [d.start for d in self.dims if d.kind in ("real", "qgrid")]

    @property
    def discrete_dims(self) -> list[Dim]:
        """Dimensions searched value by value (ordinal and categorical)."""
        return [d for d in self.dims if d.kind in ("ordinal", "categorical")]

    @property
    def qgrid_dims(self) -> list[Dim]:
        return [d for d in self.dims if d.kind == "qgrid"]

    # ----- the codec -----------------------------------------------------------------------
    def encode(self, config: Mapping[str, Any]) -> FloatArray:
        row = np.zeros(self.width)
        for d in self.dims:
            d.encode_into(config.get(d.name), row)
        return row

    def encode_many(self, configs: Sequence[Mapping[str, Any]]) -> FloatArray:
        out = np.zeros((len(configs), self.width))
        for i, c in enumerate(configs):
            out[i] = self.encode(c)
        return out

    def decode(self, row: FloatArray) -> dict[str, Any]:
        return {d.name: d.decode(row[d.start : d.start + d.width]) for d in self.dims}

    def snap(self, rows: FloatArray) -> FloatArray:
        """Each row moved onto the nearest feasible configuration (a copy)."""
        out = np.atleast_2d(np.array(rows, dtype=np.float64, copy=True))
        np.clip(out, 0.0, 1.0, out=out)
        for row in out:
            for d in self.dims:
                d.snap_into(row)
        return out

    def from_unit(self, units: FloatArray) -> FloatArray:
        """Rows for points of ``[0, 1)^len(dims)`` (one coordinate per parameter, e.g. Sobol
        points): each coordinate mapped to an allowed value of its parameter."""
        units = np.atleast_2d(units)
        out = np.zeros((units.shape[0], self.width))
        for row, u in zip(out, units, strict=True):
            for j, d in enumerate(self.dims):
                d.from_unit(float(u[j]), row)
        return out

    def key(self, row: FloatArray) -> str:
        """The configuration key (``config_key``) of the decoded row."""
        return config_key(self.decode(row))

    def enumerate_all(self) -> FloatArray:
        """Every feasible row of a finite space (the caller checks the size first)."""
        rows = np.zeros((1, self.width))
        for d in self.dims:
            count = d.count
            assert count is not None
            if d.width == 0:
                continue
            blocks = []
            for i in range(count):
                block = rows.copy()
                for r in block:
                    if d.kind == "qgrid":
                        r[d.start] = d._real_pos(d._q_value(d.kmin + i))
                    else:
                        d.set_index(r, i)
                blocks.append(block)
            rows = np.vstack(blocks)
        return rows
