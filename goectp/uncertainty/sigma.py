"""The σ model: calibrated σ from a member spread, and its fit to held-out errors (see :mod:`goectp.uncertainty`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z1, Z2 = 0.6827, 0.9545  # Gaussian coverage of ±1σ and ±2σ
QUANTITIES = ("tensor", "eps_mean", "anisotropy")


def tau_hat(std_pop: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Population std of ``n`` members → estimate of the member standard deviation (``ddof=1``); 0 for n = 1."""
    n = np.asarray(n, dtype=np.float64)
    factor = np.sqrt(np.where(n > 1, n / np.maximum(n - 1, 1), 0.0))
    return np.asarray(std_pop, dtype=np.float64) * factor


def calibrated_sigma(params: dict[str, Any], std_pop: np.ndarray, mean: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """σ_cal = sqrt((s τ̂)² + (c |μ|)²) (inf stays inf)."""
    tau = tau_hat(std_pop, n)
    s, c = float(params["s"]), float(params.get("c", 0.0))
    mean = np.asarray(mean, dtype=np.float64) - float(params.get("ref", 0.0))
    with np.errstate(invalid="ignore", over="ignore"):
        rel = c * np.abs(np.where(np.isfinite(mean), mean, 0.0))
        out = np.sqrt((s * tau) ** 2 + rel**2)
    return np.where(np.isinf(tau) | np.isinf(mean), np.inf, out)


def coverage(err: np.ndarray, sigma: np.ndarray, k: float) -> float:
    """Fraction of ``|err| <= k σ`` (finite points only)."""
    ok = np.isfinite(err) & np.isfinite(sigma)
    return float(np.mean(np.abs(err[ok]) <= k * sigma[ok])) if ok.any() else float("nan")


def gaussian_nll(err: np.ndarray, sigma: np.ndarray) -> float:
    ok = np.isfinite(err) & np.isfinite(sigma) & (sigma > 0)
    e, s = err[ok], sigma[ok]
    return float(np.mean(np.log(s) + 0.5 * (e / s) ** 2 + 0.5 * math.log(2 * math.pi)))


def _scale_for(
    err: np.ndarray, tau: np.ndarray, rel: np.ndarray, c: float, k: float = 2.0, target: float = Z2
) -> float:
    """The s for which ``|err| <= k sqrt((s τ)² + (c rel)²)`` holds for a fraction ``target`` (bisection)."""
    lo, hi = 0.0, 1.0
    cov = lambda s: np.mean(np.abs(err) <= k * np.sqrt((s * tau) ** 2 + (c * rel) ** 2))  # noqa: E731
    while cov(hi) < target and hi < 1e6:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cov(mid) < target else (lo, mid)
    return hi


TARGET_1SIGMA, TARGET_2SIGMA = (0.60, 0.75), (0.90, 0.97)  # the bands the issue asks for
#: How far inside the ±2σ band an in-sample fit aims: fitted on 4/5 of the points, the coverage of the fifth
#: comes out ~1 point lower (the shipped default: 89.6 % out of fold from a 90 % in-sample fit).
FIT_MARGIN = 0.015


def _band_loss(cov1: float, cov2: float, margin: float = 0.0) -> float:
    """Distance of the ±2σ coverage from its band (``margin`` inside it, weighted ×100), then of the ±1σ coverage
    from its band (×10), then from the Gaussian values. ±2σ is what a user reads as "calibrated"; the errors are
    heavier-tailed than a Gaussian, so when both bands cannot hold, ±1σ gives way (it comes out conservative)."""
    out2 = max(0.0, TARGET_2SIGMA[0] + margin - cov2) + max(0.0, cov2 - TARGET_2SIGMA[1] + margin)
    out1 = max(0.0, TARGET_1SIGMA[0] - cov1) + max(0.0, cov1 - TARGET_1SIGMA[1])
    return 100.0 * out2 + 10.0 * out1 + abs(cov1 - Z1) + abs(cov2 - Z2)


def fit_form(err: np.ndarray, tau: np.ndarray, mu: np.ndarray, form: str) -> dict[str, float]:
    """Fit one σ form on calibration points (arrays of equal length, finite).

    ``scale``: s such that ±2σ covers 95.4 % (a conformal quantile of |err|/τ̂). ``scale+relative``: a grid over
    c, and for each c the s > 0 giving ±2σ coverage of 90-95.4 %; kept: the pair with the lowest
    :func:`_band_loss` (±2σ at least ``FIT_MARGIN`` inside 90-97 %, then ±1σ in 60-75 %, then closest to the
    Gaussian 68.3 % / 95.4 %). The errors are heavier-tailed than a Gaussian (a few % of crystals — soft-mode,
    ferroelectric-like — miss by about ε itself), so one σ cannot give 68.3 % and 95.4 % at once; the bands are
    what a user can rely on.
    """
    rel = np.abs(mu)
    if form == "scale":
        return {"s": _scale_for(err, tau, rel, 0.0), "c": 0.0}
    best = None
    for c in np.concatenate([[0.0], np.geomspace(1e-2, 1.0, 30)]):
        for target in (0.90, 0.92, 0.93, 0.94, 0.954):
            s = _scale_for(err, tau, rel, float(c), target=target)
            if s < 1e-6:  # the relative floor alone would do: σ would ignore the members' disagreement
                continue
            sig = np.sqrt((s * tau) ** 2 + (c * rel) ** 2)
            loss = _band_loss(coverage(err, sig, 1.0), coverage(err, sig, 2.0), FIT_MARGIN)
            if best is None or loss < best[0] - 1e-9:
                best = (loss, {"s": s, "c": float(c)})
    return best[1]


def fit_quantity(err: np.ndarray, tau: np.ndarray, mu: np.ndarray, seed: int = 0, folds: int = 5) -> dict[str, Any]:
    """Fit both forms; keep the one whose 5-fold out-of-fold ±1σ/±2σ coverages are closest to the target bands
    (then: lower out-of-fold Gaussian NLL). The heavy tail makes NLL alone favour huge σ (it is dominated by the few
    crystals that miss by ~ε), so coverage decides."""
    ok = np.isfinite(err) & np.isfinite(tau) & np.isfinite(mu)
    err, tau, mu = err[ok], tau[ok], mu[ok]
    fold = np.random.default_rng(seed).permutation(len(err)) % folds
    scores = {}
    for form in ("scale", "scale+relative"):
        sig = np.zeros_like(err)
        for f in range(folds):
            p = fit_form(err[fold != f], tau[fold != f], mu[fold != f], form)
            sig[fold == f] = np.sqrt((p["s"] * tau[fold == f]) ** 2 + (p["c"] * mu[fold == f]) ** 2)
        scores[form] = {
            "nll_oof": gaussian_nll(err, sig),
            "coverage_1sigma_oof": coverage(err, sig, 1),
            "coverage_2sigma_oof": coverage(err, sig, 2),
        }
    form = min(
        scores,
        key=lambda k: (
            _band_loss(scores[k]["coverage_1sigma_oof"], scores[k]["coverage_2sigma_oof"]),
            scores[k]["nll_oof"],
        ),
    )
    params = fit_form(err, tau, mu, form)
    raw = tau * np.sqrt((5 - 1) / 5)  # the raw 5-member-equivalent population spread, for "before"
    return {
        "form": form,
        **{k: float(v) for k, v in params.items()},
        "n_points": int(len(err)),
        "selection": scores,
        "coverage_raw": {"1sigma": coverage(err, raw, 1), "2sigma": coverage(err, raw, 2)},
    }


def propagated_alpha_sigma(
    tensor_params: dict[str, Any], alpha: np.ndarray, eig: np.ndarray, eig_std_pop: np.ndarray, n: np.ndarray | int
) -> np.ndarray:
    """σ(α) from the calibrated eigenvalue σ's: α·sqrt((σ₃/λ₃)² + (σ₁/λ₁)²) (inf when λ₁ <= 0 or α is inf)."""
    n = np.asarray(n)
    sig = calibrated_sigma(tensor_params, eig_std_pop, eig, n.reshape(n.shape + (1,)) if n.ndim else n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(alpha) * np.sqrt((sig[..., 2] / eig[..., 2]) ** 2 + (sig[..., 0] / eig[..., 0]) ** 2)
    return np.where((eig[..., 0] <= 0) | ~np.isfinite(alpha), np.inf, out)


def fit_factor(err: np.ndarray, base: np.ndarray) -> float:
    """The factor k for which ``k · base`` meets the coverage bands best (:func:`_band_loss`: ±2σ inside 90-97 %
    by ``FIT_MARGIN``, then ±1σ inside 60-75 %, then closest to the Gaussian values), for errors ``err`` and a σ
    ``base`` of the same points."""
    best = None
    for target in (0.86, 0.88, 0.90, 0.92, 0.94, 0.954):
        k = _scale_for(err, base, np.zeros_like(base), 0.0, target=target)
        loss = _band_loss(coverage(err, k * base, 1.0), coverage(err, k * base, 2.0), FIT_MARGIN)
        if best is None or loss < best[0] - 1e-9:
            best = (loss, k)
    return best[1]


def fit_propagated(err: np.ndarray, base: np.ndarray, seed: int = 0, folds: int = 5) -> dict[str, Any]:
    """α: σ(α) propagated from the calibrated eigenvalue σ's (:func:`propagated_alpha_sigma`) times a factor k,
    fitted like :func:`fit_form` (coverage bands). A direct fit of α's own member spread is useless: for
    (near-)cubic crystals every member gives α = 1, the spread is 0, and a scale fitted elsewhere explodes."""
    ok = np.isfinite(err) & np.isfinite(base)
    err, base = err[ok], base[ok]
    fold = np.random.default_rng(seed).permutation(len(err)) % folds
    sig = np.zeros_like(err)
    for f in range(folds):
        sig[fold == f] = fit_factor(err[fold != f], base[fold != f]) * base[fold == f]
    return {
        "form": "propagated",
        "k": fit_factor(err, base),
        "s": 0.0,
        "c": 0.0,
        "n_points": int(len(err)),
        "selection": {
            "propagated": {
                "nll_oof": gaussian_nll(err, sig),
                "coverage_1sigma_oof": coverage(err, sig, 1),
                "coverage_2sigma_oof": coverage(err, sig, 2),
            }
        },
        "coverage_raw": {},
    }
