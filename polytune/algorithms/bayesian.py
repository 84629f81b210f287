"""Bayesian optimization: a Gaussian process and an acquisition function (SEMANTICS.md §4.4).

The loop, per suggestion (``suggest(history, rng)``; the driver calls it whenever a slot frees):

1. Split the history (ids in order) into *observations* (an experiment that ended — succeeded,
   failed or stopped — with a finite value of the metric: its last reported value, Polyaxon v0's
   rule), *failures* (ended without a usable value) and *pending* experiments (created, running,
   or lost and waiting to rerun).
2. While fewer than ``n_initial_trials`` experiments exist, or nothing has been observed yet,
   suggest the next point of a scrambled Sobol sequence (``scipy.stats.qmc``) mapped onto the
   space; its scramble seed is drawn from the rng once and kept in every suggestion's meta
   (``bo_sobol_seed``), so the whole initial design is one low-discrepancy sequence.
3. Otherwise fit the GP (``_gp.py``) to the observations in the unit box (``_encoding.py``):
   targets are the lower-is-better score, standardized and Yeo–Johnson transformed
   (``_yeo_johnson``: tames heavy tails); failures get the worst observed target (the region
   that crashed is not worth revisiting, and the model never sees NaN); hyperparameters by MAP
   with restarts (below).
4. Pending experiments become *kriging-believer* fantasies: the GP is conditioned, with the same
   hyperparameters, on its own posterior mean at each pending point. The mean does not move, the
   uncertainty there collapses, so the acquisition looks elsewhere — every concurrency slot gets
   a distinct, informative point as soon as it frees (Polyaxon ran one BO experiment at a time).
   Constant liars (every pending point told the best, or the worst, target so far) were measured
   too and did much worse at concurrency 4 (benchmarks/README.md): "best" herds the batch into
   one spot, "worst" pushes it away from the promising one.
5. Maximize the acquisition (``_acquisition.py``) over configurations neither observed nor
   running (never a repeat) and return the best.

Hyperparameter restarts: the starts are the configured ``length_scale`` (every dimension), the
hyperparameters of the latest model-based suggestion (read back from its meta, ``bo_gp``: a warm
start that usually converges in a few steps, and is itself a function of the history), and
``n_restarts_optimizer`` random perturbations of the first drawn from the rng. All are scored;
L-BFGS-B polishes the best two.

Counting: every experiment of the history counts toward ``n_initial_trials + n_iterations``
(failures included, as in Polyaxon), so the search always ends. An all-discrete (or q-grid)
space smaller than that runs every configuration once, then ends.

Determinism: the result is a function of (settings, history, rng); the driver derives the rng
from the group's seed and the history length, and the only state read back (Sobol seed, warm
start) is in the history itself, so a resumed group suggests what the uninterrupted one would
have. BLAS is limited to one thread during a suggestion: faster for these small matrices on a
shared machine, and free of thread-count-dependent rounding.

Import discipline: scipy (and threadpoolctl, from scikit-learn's requirements) are imported only
by this package's BO modules, which the searcher registry imports lazily.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import optimize
from scipy.stats import qmc

from polytune.algorithms._acquisition import Acquisition, maximize
from polytune.algorithms._encoding import Encoder
from polytune.algorithms._gp import GP, Kernel, default_theta, fit_gp
from polytune.experiment import Experiment, Objective, Suggestion
from polytune.model import BOSettings, Config
from polytune.space import Space, config_key

__all__ = ["BayesianSearch", "make"]

FloatArray = npt.NDArray[np.float64]

SOBOL_KEY = "bo_sobol_seed"
GP_KEY = "bo_gp"
PHASE_KEY = "bo_phase"
Y_TRANSFORM = "yeo-johnson"  # or "standardize" (benchmarks/README.md compares them)


def make(config: Config) -> BayesianSearch:
    settings = config.settings
    if not isinstance(settings, BOSettings):
        raise TypeError(f"bo needs BOSettings, got {type(settings).__name__}")
    return BayesianSearch(config.space, settings)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


class BayesianSearch:
    """GP-based Bayesian optimization over ``space`` (see the module docstring)."""

    def __init__(self, space: Space, settings: BOSettings) -> None:
        self.space = space
        self.settings = settings
        self.encoder = Encoder(space)
        self.objective = Objective(settings.metric.name, settings.metric.optimization)
        self.kernel = Kernel(settings.kernel, float(settings.nu))
        total = settings.n_initial_trials + settings.n_iterations
        size = self.encoder.size
        self._total = total if size is None else min(total, size)

    # ----- the searcher interface ------------------------------------------------------------
    def planned_total(self) -> int:
        return self._total

    def is_finished(self, history: Sequence[Experiment]) -> bool:
        if len(history) >= self._total:
            return True
        size = self.encoder.size
        return size is not None and len({config_key(e.config) for e in history}) >= size

    def suggest(self, history: Sequence[Experiment], rng: np.random.Generator) -> Suggestion | None:
        if self.is_finished(history):
            return None
        with _one_blas_thread(), np.errstate(all="ignore"):
            return self._suggest(list(history), rng)

    # ----- the steps ------------------------------------------------------------------------
    def _suggest(self, history: list[Experiment], rng: np.random.Generator) -> Suggestion | None:
        taken = {config_key(e.config) for e in history}
        sobol_seed = next(
            (int(e.meta[SOBOL_KEY]) for e in history if isinstance(e.meta.get(SOBOL_KEY), int)),
            None,
        )
        if sobol_seed is None:
            sobol_seed = int(rng.integers(2**31))
        observed, failed, pending = self._split(history)
        if len(history) < self.settings.n_initial_trials or not observed:
            row = self._design_point(len(history), sobol_seed, taken, rng)
            if row is None:
                return None
            return self._suggestion(row, {PHASE_KEY: "initial", SOBOL_KEY: sobol_seed})
        gp, incumbent = self._fit(history, observed, failed, rng)
        model = gp
        if pending:
            Xp = self.encoder.encode_many([e.config for e in pending])
            believed, _ = gp.predict(Xp)
            model = gp.condition(Xp, believed)
        s = self.settings
        acq = Acquisition(model, s.acquisition_function, incumbent, kappa=s.kappa, eps=s.eps)
        order = np.argsort(gp.y[: len(observed)], kind="stable")[:5]
        incumbents = [gp.X[i] for i in order]
        row = maximize(
            acq,
            self.encoder,
            rng,
            taken=taken,
            taken_rows=model.X,
            incumbents=incumbents,
            n_candidates=s.n_warmup,
            n_starts=s.n_iter,
        )
        if row is None:
            return None
        meta: dict[str, Any] = {
            PHASE_KEY: "model",
            SOBOL_KEY: sobol_seed,
            "bo_iteration": max(1, len(history) - s.n_initial_trials + 1),
            GP_KEY: [float(t) for t in gp.theta],
        }
        return self._suggestion(row, meta)

    def _suggestion(self, row: FloatArray, meta: dict[str, Any]) -> Suggestion:
        return Suggestion(config=self.encoder.decode(row), meta=meta)

    def _split(
        self, history: Sequence[Experiment]
    ) -> tuple[list[tuple[Experiment, float]], list[Experiment], list[Experiment]]:
        observed: list[tuple[Experiment, float]] = []
        failed: list[Experiment] = []
        pending: list[Experiment] = []
        for e in history:
            if not e.status.is_done:
                pending.append(e)
                continue
            score = self.objective.score(e)
            if score is None or not math.isfinite(score):
                failed.append(e)
            else:
                observed.append((e, score))
        return observed, failed, pending

    def _design_point(
        self, index: int, seed: int, taken: set[str], rng: np.random.Generator
    ) -> FloatArray | None:
        """The ``index``-th point of the group's Sobol sequence, or the next one not taken."""
        d = max(1, len(self.encoder.dims))
        m = max(1, math.ceil(math.log2(index + 64)))
        units = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seed)).random_base2(m)
        rows = self.encoder.from_unit(units[index:])
        for row in rows:
            if self.encoder.key(row) not in taken:
                return np.asarray(row, dtype=np.float64)
        for _ in range(1000):  # a nearly exhausted space: random feasible points
            row = self.encoder.from_unit(rng.random((1, d)))[0]
            if self.encoder.key(row) not in taken:
                return np.asarray(row, dtype=np.float64)
        size = self.encoder.size
        if size is not None and size <= 100_000:
            for row in self.encoder.enumerate_all():
                if self.encoder.key(row) not in taken:
                    return np.asarray(row, dtype=np.float64)
        return None

    def _fit(
        self,
        history: Sequence[Experiment],
        observed: list[tuple[Experiment, float]],
        failed: list[Experiment],
        rng: np.random.Generator,
    ) -> tuple[GP, float]:
        enc = self.encoder
        scores = np.array([s for _, s in observed], dtype=np.float64)
        y = _standardize(scores)
        if Y_TRANSFORM == "yeo-johnson":
            y = _yeo_johnson(y)
        X = enc.encode_many([e.config for e, _ in observed])
        if failed:
            X = np.vstack([X, enc.encode_many([e.config for e in failed])])
            y = np.concatenate([y, np.full(len(failed), float(y.max()))])
        D = enc.width
        base = default_theta(D, float(self.settings.length_scale))
        starts = [base]
        warm = _warm_start(history, D)
        if warm is not None:
            starts.append(warm)
        for _ in range(int(self.settings.n_restarts_optimizer)):
            starts.append(base + rng.normal(0.0, 1.0, size=base.shape))
        # Polishing costs one factorization per step: two starts while that is cheap, then the
        # best-scored one (usually the warm start, which converges in a few steps).
        gp = fit_gp(X, y, self.kernel, starts, n_optimize=2 if len(y) <= 100 else 1)
        # The incumbent is the best observed target (Jones et al. 1998). The lowest posterior
        # mean at an observed point (a "plug-in" incumbent, meant for noisy metrics) was measured
        # too: Hartmann-6 88.1 instead of 95.8, the other tasks unchanged (benchmarks/README.md).
        return gp, float(y[: len(observed)].min())


def _standardize(v: FloatArray) -> FloatArray:
    mu, sd = float(v.mean()), float(v.std())
    if not math.isfinite(sd) or sd <= 0.0:
        sd = 1.0
    return (v - mu) / sd


def _yj(y: FloatArray, lam: float) -> FloatArray:
    pos = y >= 0.0
    out = np.empty_like(y)
    if abs(lam) > 1e-8:
        out[pos] = np.expm1(lam * np.log1p(y[pos])) / lam
    else:
        out[pos] = np.log1p(y[pos])
    if abs(lam - 2.0) > 1e-8:
        out[~pos] = -np.expm1((2.0 - lam) * np.log1p(-y[~pos])) / (2.0 - lam)
    else:
        out[~pos] = -np.log1p(-y[~pos])
    return out


def _yeo_johnson(y: FloatArray) -> FloatArray:
    """Yeo–Johnson power transform with the maximum-likelihood λ in [-2, 4], standardized again.

    Losses are often heavy-tailed (a diverged run, Rosenbrock's 1e5 next to 1): a GP on raw
    z-scores spends its length scales explaining the outliers. The transform is monotone, so
    the best point stays the best (HEBO, Cowen-Rivers et al. 2022, found it the most useful
    single change to a GP optimizer). λ is bounded so that a few points cannot pick an extreme
    warp; the likelihood is Yeo & Johnson's (2000) profile log-likelihood. Falls back to ``y``
    when the fit fails."""
    if len(y) < 3 or float(np.ptp(y)) <= 0.0:
        return y
    log_jac = float(np.sum(np.sign(y) * np.log1p(np.abs(y))))

    def negative_llf(lam: float) -> float:
        var = float(np.var(_yj(y, lam)))
        if not math.isfinite(var) or var <= 0.0:
            return math.inf
        return 0.5 * len(y) * math.log(var) - (lam - 1.0) * log_jac

    res = optimize.minimize_scalar(negative_llf, bounds=(-2.0, 4.0), method="bounded")
    yt = _yj(y, float(res.x))
    if not np.all(np.isfinite(yt)) or float(np.ptp(yt)) <= 0.0:
        return y
    return _standardize(yt)


def _warm_start(history: Sequence[Experiment], width: int) -> FloatArray | None:
    for e in reversed(history):
        theta = e.meta.get(GP_KEY)
        if (
            isinstance(theta, list)
            and len(theta) == width + 2
            and all(isinstance(t, int | float) and math.isfinite(t) for t in theta)
        ):
            return np.asarray(theta, dtype=np.float64)
    return None
