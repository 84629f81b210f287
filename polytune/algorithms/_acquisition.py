"""Acquisition functions and their maximization over the encoded space.

Notation: the GP models ``y``, a lower-is-better transform of the metric; ``μ(x)``, ``σ(x)`` its
posterior mean and standard deviation; ``y*`` the incumbent (the best observed target);
``z = (y* - ε - μ) / σ``, with ``ε`` in units of the standardized target. Each function is
*maximized*:

* ``ei``:  log EI(x) = log h(z) + log σ, with h(z) = φ(z) + z Φ(z). The logarithm, computed
  stably for very negative ``z`` (Ament et al., "Unexpected Improvements to Expected Improvement
  for Bayesian Optimization", NeurIPS 2023), keeps gradients alive far from the incumbent where
  plain EI underflows to 0.
* ``poi``: log Φ(z).
* ``ucb``: -μ + κ σ (the lower confidence bound of a minimization, negated).

Maximization (``maximize``), in the order that makes it cheap and never wasteful:

1. candidates: ``n_candidates`` scrambled-Sobol points mapped onto feasible configurations
   (every discrete value allowed, every q-grid snapped), plus perturbations of the best observed
   configurations (local refinement is where BO gains most once the basin is found);
2. the ``n_starts`` best distinct candidates start a local search: L-BFGS-B on the continuous
   columns (all starts at once: the acquisition is a sum over starts, so one L-BFGS-B run on the
   stacked variables optimizes each independently and costs one batched GP prediction per
   step), then q-grids are snapped and each discrete parameter tries its neighbouring values
   (categorical: every value), alternating while anything improves;
3. the best evaluated configuration that is neither observed nor running wins, and not a near
   repeat of one either (``_too_close``: within ``MIN_DISTANCE`` length scales; only when every
   good candidate is one does an exact novelty suffice). A fully discrete space small enough
   (``ENUMERATE_LIMIT``) is searched exhaustively instead: the best unevaluated configuration,
   exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import optimize, special
from scipy.stats import qmc

from polytune.algorithms._encoding import Dim, Encoder
from polytune.algorithms._gp import GP

__all__ = ["Acquisition", "maximize"]

FloatArray = npt.NDArray[np.float64]

ENUMERATE_LIMIT = 4096
MIN_DISTANCE = 0.02
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT_EPS = 1.0 / math.sqrt(np.finfo(np.float64).eps)


def _log1mexp(a: FloatArray) -> FloatArray:
    """log(1 - exp(a)) for a < 0, accurate on both sides of -log 2."""
    out = np.empty_like(a)
    near = a > -math.log(2.0)
    out[near] = np.log(-np.expm1(a[near]))
    out[~near] = np.log1p(-np.exp(a[~near]))
    return out


def log_h(z: FloatArray) -> FloatArray:
    """log(φ(z) + z Φ(z)), stable for every z."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    mid = z > -1.0
    zm = z[mid]
    out[mid] = np.log(np.exp(-0.5 * zm * zm - _LOG_SQRT_2PI) + zm * special.ndtr(zm))
    tail = (z <= -1.0) & (z > -_INV_SQRT_EPS)
    zt = z[tail]
    a = np.log(special.erfcx(-zt / math.sqrt(2.0)) * np.abs(zt)) + _LOG_SQRT_PI_2
    out[tail] = -0.5 * zt * zt - _LOG_SQRT_2PI + _log1mexp(np.minimum(a, -1e-300))
    far = z <= -_INV_SQRT_EPS
    zf = z[far]
    out[far] = -0.5 * zf * zf - _LOG_SQRT_2PI - 2.0 * np.log(np.abs(zf))
    return out


class Acquisition:
    """One acquisition function of a fitted GP (see the module docstring)."""

    def __init__(self, gp: GP, kind: str, incumbent: float, *, kappa: float, eps: float) -> None:
        self.gp = gp
        self.kind = kind
        self.incumbent = incumbent
        self.kappa = kappa
        self.eps = eps

    def values(self, X: FloatArray) -> FloatArray:
        mean, var = self.gp.predict(X)
        sd = np.sqrt(var)
        if self.kind == "ucb":
            return np.asarray(-mean + self.kappa * sd)
        z = (self.incumbent - self.eps - mean) / sd
        if self.kind == "poi":
            return np.asarray(special.log_ndtr(z))
        return np.asarray(log_h(z) + np.log(sd))

    def values_and_grads(self, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        mean, var, dmean, dvar = self.gp.predict_with_grad_batch(X)
        sd = np.sqrt(var)
        dsd = dvar / (2.0 * sd)[:, None]
        if self.kind == "ucb":
            return -mean + self.kappa * sd, -dmean + self.kappa * dsd
        z = (self.incumbent - self.eps - mean) / sd
        dz = (-dmean - z[:, None] * dsd) / sd[:, None]
        if self.kind == "poi":
            logcdf = special.log_ndtr(z)
            ratio = np.exp(-0.5 * z * z - _LOG_SQRT_2PI - logcdf)
            return logcdf, ratio[:, None] * dz
        lh = log_h(z)
        ratio = np.exp(special.log_ndtr(z) - lh)  # d log h / dz = Φ(z) / h(z)
        return lh + np.log(sd), ratio[:, None] * dz + dsd / sd[:, None]


def _neighbours(dim: Dim, index: int) -> list[int]:
    """Values a local search tries for one discrete parameter: every value of a categorical or
    of a short ordinal, else a geometric stencil (±1, ±2, ±4, …) around the current one."""
    count = len(dim.values)
    if dim.kind == "categorical" or count <= 16:
        return [i for i in range(count) if i != index]
    out: list[int] = []
    step = 1
    while step < count:
        for j in (index - step, index + step):
            if 0 <= j < count:
                out.append(j)
        step *= 2
    return out


def _lbfgsb_batch(acq: Acquisition, rows: FloatArray, cols: list[int], max_iter: int) -> FloatArray:
    """Maximize the acquisition over columns ``cols`` of every row at once (separable sum)."""
    if not cols or len(rows) == 0:
        return rows
    m, k = len(rows), len(cols)
    base = rows.copy()

    def negative(z: FloatArray) -> tuple[float, FloatArray]:
        X = base.copy()
        X[:, cols] = z.reshape(m, k)
        v, g = acq.values_and_grads(X)
        if not np.all(np.isfinite(v)):
            v = np.where(np.isfinite(v), v, -1e10)
            g = np.where(np.isfinite(g), g, 0.0)
        return -float(v.sum()), -g[:, cols].ravel()

    z0 = np.clip(base[:, cols].ravel(), 0.0, 1.0)
    try:
        res = optimize.minimize(
            negative,
            z0,
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * (m * k),
            options={"maxiter": max_iter},
        )
        z = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, 1.0)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError):
        return rows
    out = base.copy()
    out[:, cols] = z.reshape(m, k)
    return out


def _local_search(
    acq: Acquisition, encoder: Encoder, starts: FloatArray, *, rounds: int = 3, max_iter: int = 60
) -> tuple[FloatArray, FloatArray]:
    """Improve every start (feasible rows); returns the final rows and their values."""
    rows = starts.copy()
    vals = acq.values(rows)
    cols = encoder.real_columns
    dims = encoder.discrete_dims
    for r in range(rounds):
        changed = np.zeros(len(rows), dtype=bool)
        if cols:
            moved = encoder.snap(_lbfgsb_batch(acq, rows, cols, max_iter))
            mvals = acq.values(moved)
            better = mvals > vals + 1e-12
            rows[better], vals[better] = moved[better], mvals[better]
            changed |= better
        for dim in dims:
            for i in range(len(rows)):
                current = dim.decode_index(rows[i, dim.start : dim.start + dim.width])
                options = _neighbours(dim, current)
                if not options:
                    continue
                variants = np.repeat(rows[i : i + 1], len(options), axis=0)
                for v, j in zip(variants, options, strict=True):
                    dim.set_index(v, j)
                vv = acq.values(variants)
                best = int(np.argmax(vv))
                if vv[best] > vals[i] + 1e-12:
                    rows[i], vals[i] = variants[best], vv[best]
                    changed[i] = True
        if not changed.any() or (r == 0 and not dims and not encoder.qgrid_dims):
            break  # continuous only: L-BFGS-B has converged, another round would not move
    return rows, vals


def _first_new(
    rows: FloatArray,
    vals: FloatArray,
    key: Callable[[FloatArray], str],
    taken: set[str],
    near: Callable[[FloatArray], bool] | None = None,
) -> FloatArray | None:
    order = np.argsort(-vals, kind="stable")
    for i in order:
        if not np.isfinite(vals[i]):
            continue
        if (near is None or not near(rows[i])) and key(rows[i]) not in taken:
            return np.asarray(rows[i], dtype=np.float64)
    return None


def _too_close(gp: GP, taken_rows: FloatArray) -> Callable[[FloatArray], bool]:
    """Whether a row is a near-repeat of an observed or running one: within ``MIN_DISTANCE``
    in the GP's own length scales (prior correlation above 0.9997). Without this rule, EI next
    to a noise-free incumbent creeps along a step of the objective (``max_features`` 0.9999,
    0.9998, … of a decision tree), one wasted experiment after another."""
    if len(taken_rows) == 0:
        return lambda row: False
    scale = gp.inv_ls2

    def near(row: FloatArray) -> bool:
        d = taken_rows - row
        return bool(np.min((d * d) @ scale) < MIN_DISTANCE**2)

    return near


def maximize(
    acq: Acquisition,
    encoder: Encoder,
    rng: np.random.Generator,
    *,
    taken: set[str],
    taken_rows: FloatArray,
    incumbents: Sequence[FloatArray],
    n_candidates: int,
    n_starts: int,
) -> FloatArray | None:
    """The feasible, not yet taken row of highest acquisition (None: none could be found)."""
    size = encoder.size
    if size is not None and size <= ENUMERATE_LIMIT:
        allrows = encoder.enumerate_all()
        keys = [encoder.key(r) for r in allrows]
        fresh = np.array([k not in taken for k in keys], dtype=bool)
        if not fresh.any():
            return None
        rows = allrows[fresh]
        return np.asarray(rows[int(np.argmax(acq.values(rows)))], dtype=np.float64)
    n_params = max(1, len(encoder.dims))
    seed = int(rng.integers(2**63))
    sobol = qmc.Sobol(n_params, scramble=True, seed=np.random.default_rng(seed))
    m = max(1, math.ceil(math.log2(max(2, n_candidates))))
    units = sobol.random_base2(m)[:n_candidates]
    cands = [encoder.from_unit(units)]
    if incumbents:
        cands.append(_perturb(encoder, np.asarray(incumbents), rng, max(16, n_candidates // 4)))
    X = np.vstack(cands)
    vals = acq.values(X)
    order = np.argsort(-vals, kind="stable")
    starts: list[int] = []
    seen: set[bytes] = set()
    for i in order:
        b = X[i].tobytes()
        if b in seen:
            continue
        seen.add(b)
        starts.append(int(i))
        if len(starts) >= n_starts:
            break
    rows, rvals = _local_search(acq, encoder, X[starts])
    allrows = np.vstack([rows, X])
    allvals = np.concatenate([rvals, vals])
    found = _first_new(allrows, allvals, encoder.key, taken, _too_close(acq.gp, taken_rows))
    if found is None:  # every good candidate is a near-repeat: take the best exact novelty
        found = _first_new(allrows, allvals, encoder.key, taken)
    if found is not None:
        return found
    # Everything we looked at is taken (a nearly exhausted space): random feasible points.
    extra = encoder.from_unit(rng.random((256, n_params)))
    return _first_new(extra, acq.values(extra), encoder.key, taken)


def _perturb(
    encoder: Encoder, centres: FloatArray, rng: np.random.Generator, count: int
) -> FloatArray:
    """Feasible rows near the given ones: Gaussian steps on continuous columns (two scales),
    and each discrete parameter moved to a random value with probability 1 / #parameters."""
    picks = rng.integers(len(centres), size=count)
    X = centres[picks].copy()
    cols = encoder.real_columns
    if cols:
        scale = np.where(rng.random(count) < 0.5, 0.02, 0.1)[:, None]
        X[:, cols] += scale * rng.standard_normal((count, len(cols)))
    p = 1.0 / max(1, len(encoder.dims))
    for dim in encoder.discrete_dims:
        move = rng.random(count) < p
        for i in np.flatnonzero(move):
            dim.set_index(X[i], int(rng.integers(len(dim.values))))
    return encoder.snap(X)
