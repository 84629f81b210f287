"""Tree-structured Parzen Estimator (Bergstra, Bardenet, Bengio & Kégl, "Algorithms for
Hyper-Parameter Optimization", NIPS 2011), multivariate as in Falkner et al. 2018 (BOHB) and
Optuna's ``TPESampler(multivariate=True)``; SEMANTICS.md §3.3 and §4.5.

Notation. A configuration ``c`` is encoded as a row ``x`` of *model coordinates*, one per
modelled parameter (parameters with a single reachable value are not modelled). The history
is split into a *good* set (the ``γ(n)`` best observations) and a *bad* set (everything else).
Each set gives a Parzen estimator: a mixture, with one kernel per experiment plus one *prior*
kernel, of products of one-dimensional kernels:

    l(x) = Σ_k w_k Π_d K_kd(x_d)   (good set)        g(x) = the same over the bad set

A suggestion draws ``n_ei_candidates`` (24) candidates from ``l`` and returns the one that
maximizes ``l(x) / g(x)``, which is monotone in expected improvement (Bergstra et al. §4.1).

Kernels per parameter kind (the model coordinate in brackets):

========================  ==================================================================
uniform, normal           truncated normal on the value [the underlying draw, linear]
loguniform, lognormal     truncated normal on ``log value`` (bounds: Polyaxon's exponents)
q* (quantized)            the truncated normal of the unquantized method, integrated over the
                          *cell* of the value: ``q*`` is ``floor(x / q) * q`` (Polyaxon), so
                          value ``v`` is the event ``x ∈ [v, v + q)`` (in log space for
                          ``qloguniform``/``qlognormal``); sampled as ``transform(x)``
numeric discrete          ordinal: a truncated normal on the value's *rank* among the sorted
(range, linspace,         values, integrated over ``[rank - ½, rank + ½]``. Ranks make
logspace, geomspace,      ``logspace``/``geomspace`` log-scale and ``range``/``linspace``
numeric ``values``,       linear, and give uneven ``values`` lists an even prior
dates)
categorical ``values``    a categorical kernel: ``prior_weight · m · p / K`` on every value
(strings, booleans,       plus 1 on the observed one (Optuna's smoothing), where ``p`` is the
mixed, lists) and         prior: uniform for ``values``, the given probabilities for
every ``pvalues``         ``pvalues`` (``pchoice``). Values of probability 0 are never drawn.
========================  ==================================================================

The normal family keeps its prior: the prior kernel is ``N(loc, scale)`` (truncated to
``loc ± 10·scale``, where ``space.py`` clips draws); bounded methods get Optuna's flat prior
kernel ``N(mid, hi - lo)`` truncated to the bounds. Kernel widths follow Optuna (Bergstra's
rule): the larger distance to a sorted neighbour (the first and last observations use their
one inner neighbour), clipped to ``[σ_prior / min(100, K + 1), σ_prior]`` ("magic clip").

Choices, and why:

* ``γ(n) = min(⌈0.1·n⌉, 25)`` good observations out of ``n`` (Optuna's default; hyperopt's
  ``⌈0.25·√n⌉`` keeps too few good points at small budgets, Bergstra 2011 used the 15%
  quantile). Ties in the metric go to the lower id.
* Kernel weights: 1 for each good kernel; the bad kernels, in id order, get Optuna's ramp (the
  oldest get less weight once there are more than 25). The prior kernel weighs ``1``.
* Start-up: the first ``n_initial_trials`` experiments (10 by default, like Polyaxon's and
  Optuna's TPE) are random-search draws, and so is every suggestion while no experiment has a
  value yet. Running experiments count toward the start-up, so with concurrency ``c`` the
  model starts with ``n_initial_trials - c + 1`` observations.
* Constant liar: an experiment that is still pending (created, running, or lost and waiting
  to be rerun) is put in the *bad* set at its configuration, as if it had scored badly (its
  value cannot be known yet and must not attract the next suggestion). ``g`` then grows around
  it, so every free slot gets a different region rather than the same optimum (Polyaxon's tpe
  asked for a whole iteration at once; Optuna's ``constant_liar=True`` does the same).
  Liars do not count in ``n`` for ``γ(n)``.
* Failures: an experiment that ended (succeeded, failed or stopped) *without* a finite value
  of the metric joins the bad set too, like a liar that never got corrected: the region that
  crashed or reported nothing is not worth sampling again, and it never counts in ``n``.
  Every experiment — failed ones included — counts toward ``n_experiments``, so the search
  always ends. An experiment that did report a value (a stopped one, say) is an observation
  with its last value (Polyaxon's rule).
* Never a repeat: the best candidate whose configuration is not already in the history is
  returned; when the 24 candidates are all taken, another batch is drawn (``MAX_BATCHES``),
  then a random new configuration. An all-discrete space smaller than ``n_experiments`` runs
  every reachable configuration once, then ends (as random search does).
* Experiments whose configuration does not fit the space (a value the matrix cannot produce)
  are left out of the model; they still count toward ``n_experiments``.

Algorithms (``hyperopt``'s ``algorithm`` key, or the ``tpe`` block's):

* ``tpe``: the above.
* ``rand``: polytune's random search (``RandomSearch``), exactly.
* ``anneal``: hyperopt's annealing (``hyperopt.anneal``), re-done on the same model
  coordinates. After the same random start-up, a *parent* is drawn among the observations
  ranked best first, by index ``Geometric(1/2) - 1`` (hyperopt's ``avg_best_idx = 2``), and
  every parameter is perturbed around it within a window shrinking as
  ``s = 1 / (1 + 0.1·n)`` (``shrink_coef``; ``n`` observations): bounded and ordinal axes draw
  uniformly from a window of ``s · (hi - lo)`` around the parent (shifted to stay inside), the
  normal family draws ``N(parent, s · scale)``, categorical parameters keep the parent's value
  with probability ``1 - s`` and otherwise redraw from the prior. One parent for the whole
  configuration (hyperopt picks one per parameter): the neighbour of a good configuration,
  not a mix of several.

Determinism: a pure function of (settings, history, rng). The only per-searcher memory is an
incremental fold of what never changes in the history (configurations, their encodings and
keys), so a suggestion costs O(new experiments) for encoding plus O(n) to read statuses and
build the estimators; a resumed group suggests what the uninterrupted one would have.

Import discipline: scipy is imported here, and this module is imported only by the searcher
registry (lazily), never by the rest of polytune.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr, ndtri_exp

from polytune.algorithms._fold import HistoryFold
from polytune.algorithms.random_search import RandomSearch
from polytune.experiment import Experiment, Objective, Searcher, Suggestion
from polytune.model import Config, MetricSpec, TPESettings
from polytune.space import LOG_METHODS, RANGE_METHODS, SIGMAS, Param, Space, config_key

__all__ = ["TPESearch", "default_gamma", "default_weights", "make"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PHASE_KEY = "tpe_phase"
N_EI_CANDIDATES = 24
PRIOR_WEIGHT = 1.0
MAX_BATCHES = 4
ANNEAL_AVG_BEST_IDX = 2.0
ANNEAL_SHRINK_COEF = 0.1
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def make(config: Config) -> Searcher:
    """The searcher of a ``tpe`` config (``hyperopt``/``tpe`` kinds, the ``tpe`` block)."""
    settings = config.settings
    if not isinstance(settings, TPESettings):
        raise TypeError(f"tpe needs TPESettings, got {type(settings).__name__}")
    if settings.algorithm == "rand":
        return RandomSearch(config.space, settings.n_experiments)
    return TPESearch(
        config.space,
        settings.n_experiments,
        settings.metric,
        n_initial_trials=settings.n_initial_trials,
        n_ei_candidates=settings.n_ei_candidates,
        algorithm=settings.algorithm,
    )


def default_gamma(n: int) -> int:
    """How many of ``n`` observations form the good set."""
    return min(math.ceil(0.1 * n), 25)


def default_weights(n: int) -> FloatArray:
    """Kernel weights of ``n`` experiments in id order: a ramp for all but the newest 25."""
    if n < 25:
        return np.ones(n)
    return np.concatenate([np.linspace(1.0 / n, 1.0, num=n - 25), np.ones(25)])


# ----------------------------------------------------------------------------------------
# Gaussian helpers (vectorized, stable in the tails)
# ----------------------------------------------------------------------------------------


def _log_mass(a: FloatArray, b: FloatArray) -> FloatArray:
    """``log(Φ(b) - Φ(a))`` for standardized ``a <= b``, accurate in both tails."""
    # Both on the right: the symmetry Φ(b) - Φ(a) = Φ(-a) - Φ(-b) moves them to the left.
    right = a > 0
    lo = np.where(right, -b, a)
    hi = np.where(right, -a, b)
    log_lo = np.asarray(log_ndtr(lo), dtype=np.float64)
    log_hi = np.asarray(log_ndtr(hi), dtype=np.float64)
    with np.errstate(all="ignore"):
        # [lo, hi] in the left tail: log Φ(hi) + log(1 - Φ(lo)/Φ(hi)), no cancellation;
        # straddling 0: 1 - Φ(lo) - Φ(-hi), both terms at most ½.
        tail = log_hi + np.log1p(-np.exp(log_lo - log_hi))
        middle = np.log1p(-np.exp(log_lo) - np.exp(log_ndtr(-hi)))
    out = np.where(hi <= 0, tail, middle)
    return np.asarray(np.where(lo < hi, out, -np.inf), dtype=np.float64)


def _truncnorm_draw(a: FloatArray, b: FloatArray, r: FloatArray) -> FloatArray:
    """Standard normal draws truncated to ``[a, b]`` by inversion of uniforms ``r``."""
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    with np.errstate(all="ignore"):
        log_p = np.logaddexp(np.log1p(-r) + log_ndtr(lo), np.log(r) + log_ndtr(hi))
        z = np.asarray(ndtri_exp(log_p), dtype=np.float64)
    z = np.where(flip, -z, z)
    z = np.where(np.isfinite(z), z, np.where(flip, b, a))
    return np.asarray(np.clip(z, a, b), dtype=np.float64)


def _bandwidths(mus: FloatArray, lo: float, hi: float, prior_sigma: float) -> FloatArray:
    """Optuna's (Bergstra's) kernel widths: the larger gap to a sorted neighbour, the first and
    last using their inner neighbour only, clipped to [σ/min(100, K + 1), σ] (K kernels)."""
    n = len(mus)
    if n == 0:
        return np.empty(0)
    order = np.argsort(mus, kind="stable")
    ext = np.concatenate([[lo], mus[order], [hi]])
    sig = np.maximum(ext[1:-1] - ext[:-2], ext[2:] - ext[1:-1])
    if n >= 2:
        sig[0] = ext[2] - ext[1]
        sig[-1] = ext[-2] - ext[-3]
    out = np.empty(n)
    out[order] = sig
    min_sigma = prior_sigma / min(100.0, n + 2.0)
    return np.asarray(np.clip(out, min_sigma, prior_sigma), dtype=np.float64)


# ----------------------------------------------------------------------------------------
# Dimensions: one per modelled parameter
# ----------------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return None if math.isnan(f) else f


@dataclass
class _NumericKernels:
    mu: FloatArray  # (K,)
    sigma: FloatArray  # (K,)
    log_z: FloatArray  # (K,) log mass of the support under each kernel


@dataclass
class _NumDim:
    """A numeric axis: the underlying draw of a distribution, or the rank of a discrete value.

    ``cells``: "none" (a density on the axis), "quantized" (value ``v`` is the event
    ``[f(v), f(v + q))``, ``f`` = log for log methods) or "ordinal" (rank ``r`` is
    ``[r - ½, r + ½]``).
    """

    param: Param
    lo: float
    hi: float
    prior_mu: float
    prior_sigma: float
    cells: Literal["none", "quantized", "ordinal"] = "none"
    log: bool = False
    q: float = 0.0
    order: tuple[int, ...] = ()  # ordinal: rank -> index into param.values
    rank: dict[int, int] = field(default_factory=dict)  # ordinal: index -> rank

    # ----- values <-> coordinates ----------------------------------------------------------
    def _cell(self, value: Any) -> tuple[float, float] | None:
        """The interval of the axis that stands for ``value`` (None: not a value of it)."""
        if self.cells == "ordinal":
            index = self.param.position(value)
            if index is None or index not in self.rank:
                return None
            r = float(self.rank[index])
            return r - 0.5, r + 0.5
        v = _as_float(value)
        if v is None:
            return None
        if self.cells == "none":
            u = _log(v) if self.log else v
            return u, u
        if self.log:
            return _log(v), _log(v + self.q)
        return v, v + self.q

    def encode(self, value: Any) -> float | None:
        cell = self._cell(value)
        if cell is None:
            return None
        a = min(max(cell[0], self.lo), self.hi)
        b = min(max(cell[1], self.lo), self.hi)
        return 0.5 * (a + b)

    def decode(self, u: float) -> Any:
        if self.cells == "ordinal":
            r = int(min(max(math.floor(u + 0.5), 0), len(self.order) - 1))
            return _copy(self.param.values[self.order[r]])
        return self.param.transform(min(max(u, self.lo), self.hi))

    def snap(self, u: float) -> tuple[float, float, float]:
        """A sampled coordinate's decoded cell (``a, b``) and canonical coordinate."""
        if self.cells == "none":
            return u, u, u
        cell = self._cell(self.decode(u))
        assert cell is not None  # decode only returns values of the parameter
        a = min(max(cell[0], self.lo), self.hi)
        b = min(max(cell[1], self.lo), self.hi)
        return a, b, 0.5 * (a + b)

    # ----- the estimator -------------------------------------------------------------------
    def kernels(self, obs: FloatArray) -> _NumericKernels:
        sigma = _bandwidths(obs, self.lo, self.hi, self.prior_sigma)
        mu = np.append(obs, self.prior_mu)
        sigma = np.append(sigma, self.prior_sigma)
        log_z = _log_mass((self.lo - mu) / sigma, (self.hi - mu) / sigma)
        return _NumericKernels(mu, sigma, log_z)

    def sample(self, k: _NumericKernels, active: IntArray, rng: np.random.Generator) -> FloatArray:
        mu, sigma = k.mu[active], k.sigma[active]
        z = _truncnorm_draw((self.lo - mu) / sigma, (self.hi - mu) / sigma, rng.random(len(mu)))
        return np.asarray(np.clip(mu + sigma * z, self.lo, self.hi), dtype=np.float64)

    def log_pdf(self, k: _NumericKernels, a: FloatArray, b: FloatArray) -> FloatArray:
        """(N, K): log density (``cells == "none"``, ``a`` = the point) or log mass of [a, b]."""
        mu, sigma = k.mu[None, :], k.sigma[None, :]
        if self.cells == "none":
            z = (a[:, None] - mu) / sigma
            out = -0.5 * z * z - np.log(sigma) - _LOG_SQRT_2PI - k.log_z[None, :]
        else:
            out = _log_mass((a[:, None] - mu) / sigma, (b[:, None] - mu) / sigma)
            out = out - k.log_z[None, :]
        return np.asarray(out, dtype=np.float64)

    # ----- anneal ------------------------------------------------------------------------------
    def neighbour(self, u: float, shrink: float, rng: np.random.Generator) -> float:
        if self.param.method in ("normal", "qnormal", "lognormal", "qlognormal"):
            x = u + self.prior_sigma * shrink * float(rng.standard_normal())
            return min(max(x, self.lo), self.hi)
        half = 0.5 * (self.hi - self.lo) * shrink
        mid = min(max(u, self.lo + half), self.hi - half)
        return mid - half + 2.0 * half * float(rng.random())


@dataclass
class _CatKernels:
    weights: FloatArray  # (K, m) rows sum to 1
    cdf: FloatArray  # (K, m)


@dataclass
class _CatDim:
    """A categorical parameter: the model coordinate is the value's index."""

    param: Param
    prior: FloatArray  # (m,) the prior probability of each value (0: never drawn)

    def encode(self, value: Any) -> float | None:
        index = self.param.position(value)
        if index is None or self.prior[index] <= 0.0:
            return None
        return float(index)

    def decode(self, u: float) -> Any:
        return _copy(self.param.values[int(u)])

    def snap(self, u: float) -> tuple[float, float, float]:
        return u, u, u

    def kernels(self, obs: FloatArray) -> _CatKernels:
        m = len(self.prior)
        n_kernels = len(obs) + 1
        w = np.tile(PRIOR_WEIGHT * m * self.prior / n_kernels, (n_kernels, 1))
        w[np.arange(len(obs)), obs.astype(np.int64)] += 1.0
        w[-1] = self.prior
        w /= w.sum(axis=1, keepdims=True)
        return _CatKernels(w, np.cumsum(w, axis=1))

    def sample(self, k: _CatKernels, active: IntArray, rng: np.random.Generator) -> FloatArray:
        cdf = k.cdf[active]
        # The number of cdf steps at or below r·total: a value of probability 0 has a flat
        # step (exactly equal cdf entries) and r·total < total, so it is never drawn.
        r = rng.random(len(active)) * cdf[:, -1]
        return np.asarray((cdf <= r[:, None]).sum(axis=1), dtype=np.float64)

    def log_pdf(self, k: _CatKernels, a: FloatArray, b: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore"):
            return np.asarray(np.log(k.weights[:, a.astype(np.int64)].T), dtype=np.float64)

    def neighbour(self, u: float, shrink: float, rng: np.random.Generator) -> float:
        if float(rng.random()) < shrink:
            cdf = np.cumsum(self.prior)
            return float(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        return u


_Dim = _NumDim | _CatDim
_Kernels = _NumericKernels | _CatKernels


def _is_numeric_value(value: Any) -> bool:
    return _as_float(value) is not None and math.isfinite(float(value))


@dataclass(frozen=True)
class _Fixed:
    """A parameter with one reachable value: not modelled."""

    value: Any


def _dim_for(param: Param) -> _Dim | _Fixed:
    """The model dimension of ``param``, or ``_Fixed`` when it has one reachable value."""
    m = param.method
    if param.is_continuous:
        a = param.args
        if m in ("uniform", "quniform", "loguniform", "qloguniform"):
            lo, hi = sorted((float(a["low"]), float(a["high"])))
            mu, sigma = 0.5 * (lo + hi), hi - lo
        else:
            loc, scale = float(a["loc"]), float(a["scale"])
            lo, hi = loc - SIGMAS * scale, loc + SIGMAS * scale
            mu, sigma = loc, scale
        if not sigma > 0.0 or not math.isfinite(sigma):
            return _Fixed(param.transform(lo))
        quantized = param.is_quantized
        return _NumDim(
            param,
            lo,
            hi,
            mu,
            sigma,
            cells="quantized" if quantized else "none",
            log=m in LOG_METHODS,
            q=float(a["q"]) if quantized else 0.0,
        )
    probs = np.asarray(param.probabilities, dtype=np.float64)
    reachable = [i for i, p in enumerate(probs) if p > 0.0]
    if len(reachable) == 1:
        return _Fixed(_copy(param.values[reachable[0]]))
    # Ranges (dates included) are ordered; a ``values`` list is when every value is a number.
    ordinal = param.method in RANGE_METHODS or (
        param.method == "values" and all(_is_numeric_value(v) for v in param.values)
    )
    if ordinal:
        values = param.values
        if param.method == "values":
            order = tuple(sorted(range(len(values)), key=lambda i: (float(values[i]), i)))
        else:
            order = tuple(range(len(values)))  # ranges and dates are materialized in order
        m_values = len(order)
        return _NumDim(
            param,
            -0.5,
            m_values - 0.5,
            0.5 * (m_values - 1),
            float(m_values),
            cells="ordinal",
            order=order,
            rank={index: r for r, index in enumerate(order)},
        )
    return _CatDim(param, probs / probs.sum())


# ----------------------------------------------------------------------------------------
# The Parzen estimator of a set of experiments
# ----------------------------------------------------------------------------------------


@dataclass
class _Estimator:
    """A mixture of product kernels: one per row of ``X`` (weights ``w``) plus the prior."""

    dims: list[_Dim]
    log_w: FloatArray  # (K,)
    w: FloatArray  # (K,)
    kernels: list[_Kernels]

    @classmethod
    def fit(cls, dims: list[_Dim], X: FloatArray, weights: FloatArray) -> _Estimator:
        w = np.append(weights, PRIOR_WEIGHT) if len(X) else np.ones(1)
        w = w / w.sum()
        kernels: list[_Kernels] = []
        for j, dim in enumerate(dims):
            obs = X[:, j] if len(X) else np.empty(0)
            kernels.append(dim.kernels(obs))
        with np.errstate(divide="ignore"):
            log_w = np.log(w)
        return cls(dims, log_w, w, kernels)

    def sample(self, size: int, rng: np.random.Generator) -> FloatArray:
        active = rng.choice(len(self.w), p=self.w, size=size).astype(np.int64)
        out = np.empty((size, len(self.dims)))
        for j, (dim, k) in enumerate(zip(self.dims, self.kernels, strict=True)):
            out[:, j] = dim.sample(k, active, rng)  # type: ignore[arg-type]
        return out

    def log_pdf(self, A: FloatArray, B: FloatArray) -> FloatArray:
        """log density of the candidates whose cells are ``[A, B]`` (rows), shape (N,)."""
        total = np.broadcast_to(self.log_w[None, :], (len(A), len(self.w))).copy()
        for j, (dim, k) in enumerate(zip(self.dims, self.kernels, strict=True)):
            total += dim.log_pdf(k, A[:, j], B[:, j])  # type: ignore[arg-type]
        top = total.max(axis=1)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            return np.asarray(
                np.log(np.exp(total - top[:, None]).sum(axis=1)) + top, dtype=np.float64
            )


# ----------------------------------------------------------------------------------------
# The searcher
# ----------------------------------------------------------------------------------------


@dataclass
class _Seen:
    """The fold of the history: per experiment its key and model row (None: not in the space)."""

    keys: set[str] = field(default_factory=set)
    rows: list[FloatArray | None] = field(default_factory=list)


class TPESearch:
    """TPE (or hyperopt's anneal) over ``space`` for ``n_experiments`` (module docstring)."""

    def __init__(
        self,
        space: Space,
        n_experiments: int,
        metric: MetricSpec,
        *,
        n_initial_trials: int = 10,
        n_ei_candidates: int = N_EI_CANDIDATES,
        algorithm: Literal["tpe", "anneal"] = "tpe",
        constant_liar: bool = True,
    ) -> None:
        if n_initial_trials < 1:
            raise ValueError(f"n_initial_trials must be at least 1 (got {n_initial_trials})")
        if n_ei_candidates < 1:
            raise ValueError(f"n_ei_candidates must be at least 1 (got {n_ei_candidates})")
        if algorithm not in ("tpe", "anneal"):
            raise ValueError(f"algorithm must be tpe or anneal (got {algorithm!r})")
        self.space = space
        self.objective = Objective(metric.name, metric.optimization)
        self.n_initial_trials = n_initial_trials
        self.n_ei_candidates = n_ei_candidates
        self.algorithm = algorithm
        self.constant_liar = constant_liar
        # Counting, exhaustion and the start-up draws are random search's, exactly.
        self.random = RandomSearch(space, n_experiments)
        built = [(p, _dim_for(p)) for p in space.params]
        self._fixed: dict[str, Any] = {p.name: d.value for p, d in built if isinstance(d, _Fixed)}
        self._dims: list[_Dim] = [d for _, d in built if isinstance(d, _NumDim | _CatDim)]
        self._seen = HistoryFold(_Seen, self._see)

    # ----- the searcher interface ----------------------------------------------------------
    def planned_total(self) -> int:
        return self.random.planned_total()

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        return self.random.is_finished(history)

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        if self.random.is_finished(history):
            return None
        seen = self._seen(history)
        ranked, bad, n_observed = self._split(history, seen)
        if len(history) < self.n_initial_trials or n_observed == 0 or not self._dims:
            return self._random(history, rng, "startup")
        with np.errstate(all="ignore"):
            if self.algorithm == "anneal":
                config = self._anneal(ranked, n_observed, seen, rng) if ranked else None
                phase = "anneal"
            else:
                config = self._tpe(ranked, bad, seen, rng)
                phase = "model"
        if config is None:  # every candidate was taken: the space is nearly exhausted
            return self._random(history, rng, "random")
        return Suggestion(config=config, meta={PHASE_KEY: phase})

    # ----- the steps ---------------------------------------------------------------------------
    def _random(
        self, history: Sequence[Experiment], rng: np.random.Generator, phase: str
    ) -> Suggestion | None:
        s = self.random.suggest(history, rng)
        return None if s is None else Suggestion(config=s.config, meta={PHASE_KEY: phase})

    def _see(self, seen: _Seen, exp: Experiment) -> None:
        seen.keys.add(config_key(exp.config))
        row = np.empty(len(self._dims))
        for j, dim in enumerate(self._dims):
            if dim.param.name not in exp.config:
                seen.rows.append(None)
                return
            u = dim.encode(exp.config[dim.param.name])
            if u is None or not math.isfinite(u):
                seen.rows.append(None)
                return
            row[j] = u
        seen.rows.append(row)

    def _split(
        self, history: Sequence[Experiment], seen: _Seen
    ) -> tuple[list[FloatArray], list[FloatArray], int]:
        """The observed rows ranked best first, the rows that are bad whatever their rank
        (pending liars and ended experiments without a value, in id order), and the number of
        observations."""
        observed: list[tuple[float, int, FloatArray]] = []
        others: list[tuple[int, FloatArray]] = []
        n_observed = 0
        for exp, row in zip(history, seen.rows, strict=True):
            if exp.status.is_done:
                score = self.objective.score(exp)
                if score is not None and math.isfinite(score):
                    n_observed += 1
                    if row is not None:
                        observed.append((score, exp.id, row))
                    continue
                if row is not None:
                    others.append((exp.id, row))  # ended without a value: a bad point
            elif self.constant_liar and row is not None:
                others.append((exp.id, row))  # pending: the constant liar
        observed.sort(key=lambda t: (t[0], t[1]))
        ranked = [row for _, _, row in observed]
        rest = [(i, row) for _, i, row in observed[default_gamma(len(observed)) :]] + others
        rest.sort(key=lambda t: t[0])
        return ranked, [row for _, row in rest], n_observed

    def _config(self, row: FloatArray) -> dict[str, Any]:
        values = {
            dim.param.name: dim.decode(float(u)) for dim, u in zip(self._dims, row, strict=True)
        }
        out: dict[str, Any] = {}
        for p in self.space.params:
            out[p.name] = values[p.name] if p.name in values else _copy(self._fixed[p.name])
        return out

    def _tpe(
        self,
        ranked: list[FloatArray],
        bad: list[FloatArray],
        seen: _Seen,
        rng: np.random.Generator,
    ) -> dict[str, Any] | None:
        d = len(self._dims)
        good = ranked[: default_gamma(len(ranked))]
        Xg = np.array(good).reshape(len(good), d)
        Xb = np.array(bad).reshape(len(bad), d)
        below = _Estimator.fit(self._dims, Xg, default_weights(len(good)))
        above = _Estimator.fit(self._dims, Xb, default_weights(len(bad)))
        for _ in range(MAX_BATCHES):
            X = below.sample(self.n_ei_candidates, rng)
            A, B = np.empty_like(X), np.empty_like(X)
            for i in range(len(X)):
                for j, dim in enumerate(self._dims):
                    A[i, j], B[i, j], X[i, j] = dim.snap(float(X[i, j]))
            score = below.log_pdf(A, B) - above.log_pdf(A, B)
            score = np.where(np.isnan(score), -np.inf, score)
            for i in np.argsort(-score, kind="stable"):
                config = self._config(X[i])
                if config_key(config) not in seen.keys:
                    return config
        return None

    def _anneal(
        self,
        ranked: list[FloatArray],
        n_observed: int,
        seen: _Seen,
        rng: np.random.Generator,
    ) -> dict[str, Any] | None:
        shrink = 1.0 / (1.0 + ANNEAL_SHRINK_COEF * n_observed)
        for _ in range(MAX_BATCHES * self.n_ei_candidates):
            k = min(int(rng.geometric(1.0 / ANNEAL_AVG_BEST_IDX)) - 1, len(ranked) - 1)
            row = np.array(
                [
                    dim.neighbour(float(u), shrink, rng)
                    for dim, u in zip(self._dims, ranked[k], strict=True)
                ]
            )
            config = self._config(row)
            if config_key(config) not in seen.keys:
                return config
        return None
