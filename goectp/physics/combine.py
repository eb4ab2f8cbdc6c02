"""How the physics term joins a learned prediction: one definition for the experiments and the shipped model.

With ``ε_d`` the learned total tensor, ``ε∞`` the learned electronic tensor and ``ε_phys`` the physics ε_ion
(:mod:`goectp.physics.predict`), the physics estimate of the total is ``ε_p = ε∞ + s ε_phys`` (``s``: a global
scale, SevenNet-0 being softer than DFT), and

- ``replace``: ``ε_p``;
- ``blend``: ``ε_d + w (ε_p − ε_d)``;
- ``tail-blend``: the blend only where ``ε̄_p > ε̄_d`` (the physics term can only raise a prediction: the learned
  models underestimate the high-κ tail, :mod:`goectp.evaluation.metrics`' ratio per ε̄ bin);
- ``log-blend``: ``ε_d · (ε̄_p / ε̄_d)^w``: the learned tensor's shape, its size moved geometrically toward the
  physics estimate (errors of ε̄ are multiplicative across the range; where either ε̄ ≤ 0 the learned tensor is kept).

Where there is no usable physics term (no force constants, or an unstable mode at the given geometry) the learned
prediction is kept. Every rule is a sum of tensors that each turn as ``R ε Rᵀ``, so the result is equivariant.
"""

from __future__ import annotations

import numpy as np

RULES = ("default", "replace", "blend", "tail-blend", "log-blend")


def combine_physics(
    rule: str,
    default: np.ndarray,
    electronic: np.ndarray,
    physics: np.ndarray,
    usable: np.ndarray,
    scale: float,
    weight: float,
) -> np.ndarray:
    """``[N, 3, 3]`` combined tensors (see the module docstring); ``usable [N]`` marks the records with a physics
    term (``physics`` may hold NaN elsewhere)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    default = np.asarray(default, float)
    out = default.copy()
    if rule == "default":
        return out
    usable = np.asarray(usable, bool)
    estimate = np.asarray(electronic, float) + scale * np.nan_to_num(np.asarray(physics, float))
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
