r"""How the physics term joins a learned prediction: one definition for the experiments and the shipped model.

With ``ε_d`` the learned total tensor, ``ε∞`` the learned electronic tensor and ``ε_phys`` the physics ε_ion
(:mod:`goectp.physics.predict`), the physics estimate of the total is ``ε_p = ε∞ + s ε_phys`` (``s``: a global
scale: the universal potentials are softer than DFT), and

- ``replace``: ``ε_p``;
- ``blend``: ``ε_d + w (ε_p − ε_d)``;
- ``tail-blend``: the blend only where ``ε̄_p > ε̄_d`` (the physics term can only raise a prediction: the learned
  models underestimate the high-κ tail, :mod:`goectp.evaluation.metrics`' ratio per ε̄ bin);
- ``log-blend``: ``ε_d · (ε̄_p / ε̄_d)^w``: the learned tensor's shape, its size moved geometrically toward the
  physics estimate (errors of ε̄ are multiplicative across the range; where either ε̄ ≤ 0 the learned tensor is kept);
- ``gated``: a weight per crystal and a gentle de-shrinking of the learned size (:func:`gated`),

  .. math::
      ε = e^{a + b \log ε̄_d}\,[ε_d + w(x)\,(ε_p − ε_d)], \qquad w(x) = σ(c_0 + c · x),

  with ``x`` the invariants of :func:`gate_features` (how far the physics estimate lies from the learned one, the
  softest stable mode, the number of unstable modes, the learned ε̄ itself). ``θ = (a, b, c₀, c₁…c₅)`` is fitted on
  the validation splits (``benchmarks/experiments/physics_stack.py``).

Where there is no usable physics term (no force constants, or an unstable mode at the given geometry while the
model's ``keep_unstable`` is false, as shipped) the learned prediction is kept (under ``gated``, times its size
factor); with ``keep_unstable`` true, ``ε_phys`` of such a crystal sums its stable modes. Every rule is a sum of
tensors that each turn as ``R ε Rᵀ``, so the result is equivariant.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

RULES = ("default", "replace", "blend", "tail-blend", "log-blend", "gated")
#: ``θ`` of the ``gated`` rule: (a, b) of the size factor, c₀ and one weight per :func:`gate_features` column
GATE_SIZE = 8


def _mean(t: np.ndarray) -> np.ndarray:
    return np.trace(t, axis1=-2, axis2=-1) / 3


def gate_features(
    default: np.ndarray, estimate: np.ndarray, unstable: np.ndarray, lowest_thz: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x [N, 5], log ε̄_d [N], usable [N])`` for the ``gated`` rule, all invariant scalars.

    ``x`` = (``r = log(ε̄_p / ε̄_d)``, ``|r|``, ``log(1 + ω_min)`` of the softest stable mode in THz, the number of
    unstable modes capped at 3, ``log ε̄_d``), zero where the estimate is unusable (missing, or either ε̄ ≤ 0)."""
    estimate = np.asarray(estimate, float)
    eps_d, eps_p = _mean(np.asarray(default, float)), _mean(estimate)
    usable = np.isfinite(estimate).all(axis=(-2, -1)) & (eps_p > 0) & (eps_d > 0)
    r = np.log(np.where(usable, eps_p, 1.0) / np.where(usable, eps_d, 1.0))
    soft = np.log1p(np.maximum(np.nan_to_num(np.asarray(lowest_thz, float), nan=0.0), 0.0))
    count = np.minimum(np.nan_to_num(np.asarray(unstable, float), nan=0.0), 3.0)
    log_d = np.log(np.maximum(eps_d, 1e-3))
    x = np.stack([r, np.abs(r), soft, count, log_d], axis=1)
    return x * usable[:, None], log_d, usable


def gated(theta: np.ndarray, default: np.ndarray, estimate: np.ndarray, unstable, lowest_thz) -> np.ndarray:
    """The ``gated`` rule (module docstring) for ``θ`` of :data:`GATE_SIZE` numbers; ``estimate = ε∞ + s ε_phys``
    (NaN where there is none)."""
    theta = np.asarray(theta, float)
    if theta.shape != (GATE_SIZE,):
        raise ValueError(f"the gated rule needs {GATE_SIZE} parameters, got shape {theta.shape}")
    default = np.asarray(default, float)
    x, log_d, usable = gate_features(default, estimate, unstable, lowest_thz)
    w = usable * expit(theta[2] + x @ theta[3:])  # the logistic σ, without overflow for a large argument
    step = np.where(usable[:, None, None], np.nan_to_num(np.asarray(estimate, float)) - default, 0.0)
    return (default + w[:, None, None] * step) * np.exp(theta[0] + theta[1] * log_d)[:, None, None]


def combine_physics(
    rule: str,
    default: np.ndarray,
    electronic: np.ndarray,
    physics: np.ndarray,
    usable: np.ndarray,
    scale: float,
    weight: float,
    gate: np.ndarray | None = None,
    unstable: np.ndarray | None = None,
    lowest_thz: np.ndarray | None = None,
) -> np.ndarray:
    """``[N, 3, 3]`` combined tensors (see the module docstring); ``usable [N]`` marks the records with a physics
    term (``physics`` may hold NaN elsewhere). The ``gated`` rule also needs ``gate`` (θ), ``unstable [N]`` and
    ``lowest_thz [N]`` (the softest stable mode)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    default = np.asarray(default, float)
    out = default.copy()
    if rule == "default":
        return out
    physics = np.asarray(physics, float)
    usable = np.asarray(usable, bool) & np.isfinite(physics).all(axis=(-2, -1))  # NaN or ±inf anywhere: no term
    estimate = np.asarray(electronic, float) + scale * np.where(usable[:, None, None], physics, 0.0)
    if rule == "gated":
        if gate is None or unstable is None or lowest_thz is None:
            raise ValueError("the gated rule needs gate, unstable and lowest_thz")
        return gated(gate, default, np.where(usable[:, None, None], estimate, np.nan), unstable, lowest_thz)
    if rule == "replace":
        out[usable] = estimate[usable]
        return out
    if rule == "log-blend":
        eps_d, eps_p = np.trace(default, axis1=-2, axis2=-1) / 3, np.trace(estimate, axis1=-2, axis2=-1) / 3
        use = usable & (eps_d > 0) & (eps_p > 0)
        factor = np.ones(len(default))
        factor[use] = (eps_p[use] / eps_d[use]) ** weight
        return default * factor[:, None, None]
    use = usable
    if rule == "tail-blend":
        use = usable & (np.trace(estimate, axis1=-2, axis2=-1) > np.trace(default, axis1=-2, axis2=-1))
    out[use] = (default + weight * (estimate - default))[use]
    return out
