"""A small Gaussian-process regressor in numpy/scipy, made for BO's inner loop.

Notation (Rasmussen & Williams, "Gaussian Processes for Machine Learning", 2006, ch. 2 and 5):
``X`` (n × D) inputs in the unit box, ``y`` (n) standardized targets, ``ℓ`` (D) length scales
(ARD), ``a`` the signal variance, ``s`` the noise variance, ``r² = Σ_d (x_d - x'_d)² / ℓ_d²``,
``k(x, x') = a·c(r)`` with ``c`` a Matérn-ν or RBF correlation, ``K = a·C + (s + jitter)·I``.
Hyperparameters ``θ = (log ℓ, log a, log s)`` maximize the log marginal likelihood plus a log
prior (a MAP fit), by L-BFGS-B with analytic gradients, from several starts.

Why not scikit-learn's ``GaussianProcessRegressor``:

* the acquisition optimizer needs the gradient of the posterior mean and variance with respect
  to ``x``; sklearn's ``predict`` gives none, and finite differences cost ``D + 1`` predictions
  per step;
* weak priors on the hyperparameters (as in Optuna's GPSampler and BoTorch) keep length scales
  and noise sensible with 5–20 observations, where a plain maximum-likelihood fit (sklearn)
  often collapses to tiny length scales or to "everything is noise";
* a fit costs one Cholesky factorization per evaluation, and the whole suggestion stays within
  the latency budget at 200 observations (sklearn recomputes an n × n × D gradient tensor in
  Python objects per evaluation and was ~5× slower here);
* no ``random_state``: restarts come from the caller's ``numpy.random.Generator``.

Notation of the correlation helpers: ``corr(r²)`` returns ``c`` and ``h = (dc/dr) / r``, so that
``∂c/∂x_d = h·(x_d - x'_d)/ℓ_d²`` and ``∂c/∂log ℓ_d = -h·(x_d - x'_d)²/ℓ_d²``; ``h`` is finite at
``r = 0`` for ν > 1 (and set to 0 there otherwise, where it multiplies zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import linalg, optimize, special
from scipy.linalg import lapack

__all__ = ["GP", "Kernel", "fit_gp"]

FloatArray = npt.NDArray[np.float64]

JITTER = 1e-9
MIN_NOISE = 1e-6
LOG_LS_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_AMP_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_NOISE_BOUNDS = (math.log(MIN_NOISE), math.log(2.0))


@dataclass(frozen=True)
class Kernel:
    """A stationary correlation: ``kind`` "matern" (with ``nu``) or "rbf"."""

    kind: str = "matern"
    nu: float = 2.5

    def corr(self, r2: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``c(r)`` and ``h = (dc/dr)/r`` for squared scaled distances ``r2``."""
        r2 = np.maximum(r2, 0.0)
        if self.kind == "rbf" or math.isinf(self.nu):
            c = np.exp(-0.5 * r2)
            return c, -c
        nu = self.nu
        r = np.sqrt(r2)
        if nu == 2.5:
            s5r = math.sqrt(5.0) * r
            e = np.exp(-s5r)
            return (1.0 + s5r + (5.0 / 3.0) * r2) * e, -(5.0 / 3.0) * (1.0 + s5r) * e
        if nu == 1.5:
            s3r = math.sqrt(3.0) * r
            e = np.exp(-s3r)
            return (1.0 + s3r) * e, -3.0 * e
        if nu == 0.5:
            c = np.exp(-r)
            with np.errstate(divide="ignore", invalid="ignore"):
                h = np.where(r > 0.0, -c / np.where(r > 0.0, r, 1.0), 0.0)
            return c, h
        # General ν: c = 2^(1-ν)/Γ(ν) z^ν K_ν(z), z = √(2ν) r, and d(z^ν K_ν)/dz = -z^ν K_(ν-1).
        z = math.sqrt(2.0 * nu) * r
        norm = 2.0 ** (1.0 - nu) / special.gamma(nu)
        positive = z > 0.0
        zs = np.where(positive, z, 1.0)
        with np.errstate(all="ignore"):
            c = np.where(positive, norm * zs**nu * special.kv(nu, zs), 1.0)
            h_pos = -norm * 2.0 * nu * zs ** (nu - 1.0) * special.kv(nu - 1.0, zs)
        h0 = -nu / (nu - 1.0) if nu > 1.0 else 0.0
        c = np.nan_to_num(c, nan=0.0)
        h = np.where(positive, np.nan_to_num(h_pos, nan=0.0, neginf=-1e300), h0)
        return c, h


def _sqdist(A: FloatArray, B: FloatArray) -> FloatArray:
    """Per-dimension squared differences, shape (len(A), len(B), D)."""
    d = A[:, None, :] - B[None, :, :]
    return d * d


def _scaled_r2(A: FloatArray, B: FloatArray, inv_ls2: FloatArray) -> FloatArray:
    """``r²`` between the rows of A and B as a matrix product (no len(A) × len(B) × D array):
    ``|a|² + |b|² - 2 a·b`` on inputs scaled by ``1/ℓ``, clipped at 0 against rounding."""
    s = np.sqrt(inv_ls2)
    As, Bs = A * s, B * s
    r2 = np.einsum("ij,ij->i", As, As)[:, None] + np.einsum("ij,ij->i", Bs, Bs)[None, :]
    r2 -= 2.0 * (As @ Bs.T)
    return np.asarray(np.maximum(r2, 0.0), dtype=np.float64)


@dataclass(frozen=True)
class Prior:
    """Weak priors on θ (in the unit box, standardized targets); see ``neg_log_prior``.

    Length scales: ``0.1/ℓ⁻² + 0.1·ℓ⁻²`` penalizes ℓ far from 1 in either direction (Optuna's
    choice); signal variance: Gamma(2, 1) (mode 1, the standardized variance); noise: Gamma(1.1,
    30), almost flat below 0.01 and against noise explaining everything.
    """

    ls_weight: float = 0.1
    amp_shape: float = 2.0
    amp_rate: float = 1.0
    noise_shape: float = 1.1
    noise_rate: float = 30.0

    def neg_log_prior(self, theta: FloatArray) -> tuple[float, FloatArray]:
        D = theta.size - 2
        g = np.zeros_like(theta)
        e2 = np.exp(2.0 * theta[:D])  # ℓ²
        w = self.ls_weight
        value = float(np.sum(w * e2 + w / e2))
        g[:D] = 2.0 * w * e2 - 2.0 * w / e2
        # Gamma(k, θ-rate) on exp(t), with the Jacobian: -log p = -k·t + rate·exp(t).
        for i, shape, rate in (
            (D, self.amp_shape, self.amp_rate),
            (D + 1, self.noise_shape, self.noise_rate),
        ):
            et = math.exp(theta[i])
            value += -shape * theta[i] + rate * et
            g[i] = -shape + rate * et
        return value, g


def _objective(
    theta: FloatArray,
    D2: FloatArray,
    y: FloatArray,
    kernel: Kernel,
    prior: Prior,
    with_grad: bool = True,
) -> tuple[float, FloatArray]:
    """Negative log marginal likelihood + negative log prior, and its gradient in θ (zeros
    when ``with_grad`` is false: scoring a start needs the value only)."""
    n, D = D2.shape[0], D2.shape[2]
    inv_ls2 = np.exp(-2.0 * theta[:D])
    amp, noise = math.exp(theta[D]), math.exp(theta[D + 1])
    r2 = D2 @ inv_ls2
    c, h = kernel.corr(r2)
    K = amp * c
    K[np.diag_indices_from(K)] += noise + JITTER
    try:
        L = linalg.cholesky(K, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = linalg.cho_solve((L, True), y, check_finite=False)
    value = (
        0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(L)))) + 0.5 * n * math.log(2 * math.pi)
    )
    if not with_grad:
        total = value + prior.neg_log_prior(theta)[0]
        return (total if math.isfinite(total) else 1e25), np.zeros_like(theta)
    # K⁻¹ from the Cholesky factor (LAPACK potri: a third of the cost of solving against I).
    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        return 1e25, np.zeros_like(theta)
    Kinv = np.tril(inv) + np.tril(inv, -1).T
    W = np.outer(alpha, alpha) - Kinv
    g = np.empty_like(theta)
    g[:D] = 0.5 * amp * np.einsum("ij,ijd->d", W * h, D2) * inv_ls2
    g[D] = -0.5 * amp * float(np.sum(W * c))
    g[D + 1] = -0.5 * noise * float(np.trace(W))
    p_value, p_grad = prior.neg_log_prior(theta)
    total = value + p_value
    if not math.isfinite(total):
        return 1e25, np.zeros_like(theta)
    return total, g + p_grad


class GP:
    """A GP conditioned on (X, y) with fixed hyperparameters ``theta``."""

    def __init__(self, X: FloatArray, y: FloatArray, theta: FloatArray, kernel: Kernel) -> None:
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.theta = np.asarray(theta, dtype=np.float64)
        self.kernel = kernel
        D = self.X.shape[1]
        self.inv_ls2 = np.exp(-2.0 * self.theta[:D])
        self.amp = math.exp(self.theta[D])
        self.noise = math.exp(self.theta[D + 1])
        c, _ = kernel.corr(_sqdist(self.X, self.X) @ self.inv_ls2)
        K = self.amp * c
        jitter = self.noise + JITTER
        for _ in range(6):  # add jitter until the factorization succeeds (repeated points)
            try:
                K2 = K.copy()
                K2[np.diag_indices_from(K2)] += jitter
                self.L = linalg.cholesky(K2, lower=True, check_finite=False)
                break
            except linalg.LinAlgError:
                jitter *= 10.0
        else:
            raise linalg.LinAlgError("the covariance matrix is not positive definite")
        self.alpha = linalg.cho_solve((self.L, True), self.y, check_finite=False)
        self._Kinv: FloatArray | None = None

    @property
    def Kinv(self) -> FloatArray:
        """K⁻¹, computed once (predicting many points is then one matrix product, faster than
        a triangular solve per batch)."""
        if self._Kinv is None:
            inv, info = lapack.dpotri(self.L, lower=1)
            if info != 0:
                inv = linalg.cho_solve((self.L, True), np.eye(len(self.L)), check_finite=False)
            self._Kinv = np.tril(inv) + np.tril(inv, -1).T
        return self._Kinv

    @property
    def length_scales(self) -> FloatArray:
        return np.asarray(1.0 / np.sqrt(self.inv_ls2))

    def predict(self, Xc: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and variance of the latent function at the rows of ``Xc``."""
        Xc = np.atleast_2d(Xc)
        if len(self.X) == 0:
            return np.zeros(len(Xc)), np.full(len(Xc), self.amp)
        c, _ = self.kernel.corr(_scaled_r2(Xc, self.X, self.inv_ls2))
        k = self.amp * c
        mean = k @ self.alpha
        var = self.amp - np.einsum("ij,ij->i", k @ self.Kinv, k)
        return mean, np.maximum(var, 1e-12 * self.amp)

    def predict_with_grad(self, x: FloatArray) -> tuple[float, float, FloatArray, FloatArray]:
        """Mean, variance and their gradients in ``x`` at one point."""
        delta = x[None, :] - self.X
        c, h = self.kernel.corr((delta * delta) @ self.inv_ls2)
        k = self.amp * c
        dk = (self.amp * h)[:, None] * delta * self.inv_ls2[None, :]  # ∂k_i/∂x, (n, D)
        mean = float(k @ self.alpha)
        dmean = dk.T @ self.alpha
        w = linalg.cho_solve((self.L, True), k, check_finite=False)
        var = self.amp - float(k @ w)
        dvar = -2.0 * (dk.T @ w)
        if var < 1e-12 * self.amp:
            return mean, 1e-12 * self.amp, dmean, np.zeros_like(dvar)
        return mean, var, dmean, dvar

    def predict_with_grad_batch(
        self, Xb: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Mean (m), variance (m) and their gradients (m × D) at the rows of ``Xb``."""
        delta = Xb[:, None, :] - self.X[None, :, :]  # (m, n, D)
        c, h = self.kernel.corr((delta * delta) @ self.inv_ls2)  # (m, n)
        k = self.amp * c
        dk = (self.amp * h)[:, :, None] * delta * self.inv_ls2  # ∂k_mi/∂x_m, (m, n, D)
        mean = k @ self.alpha
        dmean = np.einsum("mnd,n->md", dk, self.alpha)
        w = k @ self.Kinv  # K⁻¹k for each row, (m, n)
        var = self.amp - np.einsum("mn,mn->m", k, w)
        dvar = -2.0 * np.einsum("mnd,mn->md", dk, w)
        floor = 1e-12 * self.amp
        small = var < floor
        var = np.where(small, floor, var)
        dvar[small] = 0.0
        return mean, var, dmean, dvar

    def condition(self, Xp: FloatArray, yp: FloatArray) -> GP:
        """The same GP with extra observations (the kriging believer's fantasies)."""
        return GP(np.vstack([self.X, Xp]), np.concatenate([self.y, yp]), self.theta, self.kernel)


def default_theta(D: int, length_scale: float) -> FloatArray:
    theta = np.empty(D + 2)
    theta[:D] = math.log(min(max(length_scale, 1e-2), 1e2))
    theta[D] = 0.0
    theta[D + 1] = math.log(1e-3)
    return theta


def fit_gp(
    X: FloatArray,
    y: FloatArray,
    kernel: Kernel,
    starts: Sequence[FloatArray],
    *,
    prior: Prior | None = None,
    max_iter: int = 100,
    n_optimize: int | None = None,
) -> GP:
    """MAP hyperparameters from the given starting points; returns the fitted GP.

    Every start is scored first (one factorization each); L-BFGS-B then runs from the best
    ``n_optimize`` of them (all when None), and the best optimum wins. A failed optimization
    keeps its starting point, so the fit never raises for numerical reasons.
    """
    prior = prior or Prior()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    D = X.shape[1]
    D2 = _sqdist(X, X)
    bounds = [LOG_LS_BOUNDS] * D + [LOG_AMP_BOUNDS, LOG_NOISE_BOUNDS]
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    scored = []
    for i, t in enumerate(starts):
        t = np.clip(np.asarray(t, dtype=np.float64), lo, hi)
        f, _ = _objective(t, D2, y, kernel, prior, False)
        scored.append((f, i, t))
    scored.sort(key=lambda s: (s[0], s[1]))
    chosen = scored if n_optimize is None else scored[: max(1, n_optimize)]
    best_f, _, best_t = scored[0]
    for f0, _, t0 in chosen:
        try:
            res = optimize.minimize(
                _objective,
                t0,
                args=(D2, y, kernel, prior),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": max_iter},
            )
        except (ValueError, FloatingPointError, linalg.LinAlgError):
            continue
        f, t = float(res.fun), np.clip(np.asarray(res.x, dtype=np.float64), lo, hi)
        if math.isfinite(f) and f < best_f:
            best_f, best_t = f, t
        del f0
    return GP(X, y, best_t, kernel)
