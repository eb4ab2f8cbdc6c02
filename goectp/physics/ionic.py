r"""The ionic dielectric tensor in closed form, from Born effective charges and Γ-point force constants.

A static field ``E`` pulls atom ``i`` with the force ``F_ic = e Σ_a Z*_i[a, c] E_a``; the ions settle at
``u = Φ⁺ F`` (``Φ`` the Γ-point force constants, images moving with their atom, uniform translations projected out),
and the displaced charges polarise the cell by ``P_a = (e/Ω) Σ_ic Z*_i[a, c] u_ic``. With ``P = ε₀ ε_ion E``:

.. math::
    \varepsilon^{\mathrm{ion}}_{ab} = \frac{e^2}{\varepsilon_0 \Omega}
        \sum_{ij} Z^*_{i,ac}\, (\Phi^{+})_{ic,jd}\, Z^*_{j,bd}
      = \frac{e^2}{\varepsilon_0 \Omega} \sum_m \frac{\tilde Z_{m,a} \tilde Z_{m,b}}{\omega_m^2},
    \qquad \tilde Z_{m,a} = \sum_{ic} Z^*_{i,ac}\, \frac{e_{m,ic}}{\sqrt{M_i}}

(mode by mode: ``ω_m²`` and ``e_m`` the eigenvalues and eigenvectors of the mass-weighted dynamical matrix
``D = M^{-1/2} Φ M^{-1/2}``, ``Z̃_m`` the mode effective charge). The masses cancel in the sum: ε_ion is Born charges
squared over stiffness. Units: ``Z*`` in e, ``Φ`` in eV/Å², ``Ω`` in Å³, masses in amu.

Both ``Z*_i → R Z*_i Rᵀ`` and ``Φ_ij → R Φ_ij Rᵀ`` when the crystal turns by an orthogonal ``R``, so
``ε_ion → R ε_ion Rᵀ``: the closed form is O(3)-equivariant by construction (tested in ``tests/test_physics.py``).

Unstable modes (``ω² < 0`` at the given geometry, common for a universal potential evaluated at DFT positions) and
modes softer than ``min_frequency`` carry no finite static response and are left out of the sum; they are counted in
:class:`IonicModes` so a caller can flag the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: e²/ε₀ in eV·Å (4π × 14.3996454784 eV·Å, the Coulomb constant e²/(4πε₀))
E2_OVER_EPS0 = 4.0 * np.pi * 14.3996454784
#: √(eV / (Å² amu)) / 2π in THz: ω² of the mass-weighted dynamical matrix → frequency ν
THZ = 15.633302
#: 1 THz in cm⁻¹
CM1_PER_THZ = 33.35641
#: modes softer than this (THz) are left out of ε_ion: no finite static response
SOFT_MODE_THZ = 0.3


def acoustic_sum_rule_error(born: np.ndarray) -> float:
    """``max |Σ_i Z*_i|`` over the nine components (0 for charges that obey the acoustic sum rule)."""
    born = _born(born)
    return float(np.abs(born.sum(axis=0)).max()) if len(born) else 0.0


def enforce_acoustic_sum_rule(born: np.ndarray) -> np.ndarray:
    """``Z*_i − (1/N) Σ_j Z*_j``: the nearest charges (least squares) that obey ``Σ_i Z*_i = 0`` exactly."""
    born = _born(born)
    return born - born.mean(axis=0, keepdims=True)


@dataclass(frozen=True)
class IonicModes:
    """The Γ-point optical modes and what each adds to ε_ion (acoustic modes removed).

    Attributes:
        frequency_thz: ``[K]`` signed frequencies (THz; negative = unstable, ``ω² < 0``).
        mode_charge: ``[K, 3]`` mode effective charges ``Z̃_m`` (e / √amu).
        contribution: ``[K, 3, 3]`` each mode's ε_ion term (zero for modes left out).
        included: ``[K]`` whether the mode is in the sum (stable and at least ``min_frequency``).
        eigenvectors: ``[K, N, 3]`` mass-weighted eigenvectors ``e_m`` (unit norm), for animation.
        tensor: ``[3, 3]`` ε_ion, the sum of the contributions.
    """

    frequency_thz: np.ndarray
    mode_charge: np.ndarray
    contribution: np.ndarray
    included: np.ndarray
    eigenvectors: np.ndarray
    tensor: np.ndarray

    @property
    def num_unstable(self) -> int:
        """Optical modes with ``ω² < 0``."""
        return int((self.frequency_thz < 0).sum())

    @property
    def softest_thz(self) -> float:
        """The lowest frequency among the modes in the sum (THz; NaN when none is): how soft the response is."""
        included = self.frequency_thz[self.included]
        return float(included.min()) if included.size else float("nan")

    def shares(self) -> np.ndarray:
        """Each mode's share of ε̄_ion = tr(ε_ion)/3 (sums to 1 over the included modes when ε̄_ion > 0)."""
        total = np.trace(self.tensor)
        traces = np.trace(self.contribution, axis1=1, axis2=2)
        return traces / total if total > 0 else np.zeros_like(traces)


def ionic_modes(
    born: np.ndarray,
    force_constants: np.ndarray,
    volume: float,
    masses: np.ndarray | None = None,
    min_frequency_thz: float | None = None,
) -> IonicModes:
    """The mode-by-mode ionic dielectric tensor (see the module docstring).

    Args:
        born: Born effective charges ``[N, 3, 3]`` (e; ``Z*_i[a, c]``, a = field, c = displacement direction).
        force_constants: Γ-point force constants ``[N, N, 3, 3]`` or ``[3N, 3N]`` (eV/Å²).
        volume: cell volume Ω (Å³).
        masses: ``[N]`` atomic masses (amu); unit masses when ``None`` (ε_ion does not depend on them, the
            frequencies do).
        min_frequency_thz: modes below this frequency are left out (no finite static response). ``None``: 0.3 THz
            (:data:`SOFT_MODE_THZ`) with masses; without them, a frequency means nothing, so only what the
            pseudo-inverse of the closed form drops is left out (``ω² ≤ 1e-10 max ω²``). A number needs the masses.

    Charges that break the acoustic sum rule are first made to obey it (:func:`enforce_acoustic_sum_rule`, the
    correction the pseudo-inverse closed form implies), so the tensor does not depend on the masses.
    """
    born = enforce_acoustic_sum_rule(born)
    n = len(born)
    phi = _square(force_constants, n)
    if masses is None and min_frequency_thz is not None:
        raise ValueError("a frequency cutoff (min_frequency_thz) needs the atomic masses")
    m = np.ones(n) if masses is None else np.asarray(masses, float)
    if m.shape != (n,) or not np.all(m > 0):
        raise ValueError(f"masses must be {n} positive numbers, got shape {m.shape}")
    if not volume > 0:
        raise ValueError(f"the cell volume must be positive, got {volume}")
    inv_sqrt_m = np.repeat(1.0 / np.sqrt(m), 3)  # [3N]
    dyn = inv_sqrt_m[:, None] * phi * inv_sqrt_m[None, :]
    translations = _mass_weighted_translations(m)  # [3N, 3], orthonormal columns
    project = np.eye(3 * n) - translations @ translations.T
    omega2, vectors = np.linalg.eigh(project @ dyn @ project)  # [3N], [3N, 3N]
    # the three acoustic modes: the eigenvectors that lie in the translation space
    acoustic = np.argsort(-np.linalg.norm(translations.T @ vectors, axis=0))[:3]
    optical = np.setdiff1d(np.arange(3 * n), acoustic)
    omega2, vectors = omega2[optical], vectors[:, optical]
    frequency = np.sign(omega2) * np.sqrt(np.abs(omega2)) * THZ
    charges = np.einsum("iac,ick->ka", born, (inv_sqrt_m[:, None] * vectors).reshape(n, 3, -1))  # [K, 3]
    if min_frequency_thz is None and masses is None:
        included = omega2 > 1e-10 * max(float(np.abs(omega2).max(initial=0.0)), 1e-300)
    else:
        included = frequency >= (SOFT_MODE_THZ if min_frequency_thz is None else min_frequency_thz)
    weight = np.where(included, E2_OVER_EPS0 / volume / np.where(included, omega2, 1.0), 0.0)
    contribution = weight[:, None, None] * charges[:, :, None] * charges[:, None, :]
    tensor = contribution.sum(axis=0) if len(contribution) else np.zeros((3, 3))
    return IonicModes(
        frequency_thz=frequency,
        mode_charge=charges,
        contribution=contribution,
        included=included,
        eigenvectors=vectors.T.reshape(-1, n, 3),
        tensor=0.5 * (tensor + tensor.T),
    )


def ionic_dielectric(born: np.ndarray, force_constants: np.ndarray, volume: float, **options) -> np.ndarray:
    """ε_ion ``[3, 3]`` from Born charges ``[N, 3, 3]`` (e), force constants (eV/Å²) and the volume (Å³);
    ``options`` (``masses``, ``min_frequency_thz``) as for :func:`ionic_modes`, whose ``.tensor`` this is."""
    return ionic_modes(born, force_constants, volume, **options).tensor


def _born(born: np.ndarray) -> np.ndarray:
    born = np.asarray(born, float)
    if born.ndim != 3 or born.shape[1:] != (3, 3):
        raise ValueError(f"Born charges must be [N, 3, 3], got shape {born.shape}")
    if not np.all(np.isfinite(born)):
        raise ValueError("Born charges contain NaN or infinite values")
    return born


def _square(force_constants: np.ndarray, n: int) -> np.ndarray:
    phi = np.asarray(force_constants, float)
    if phi.shape == (n, n, 3, 3):
        phi = phi.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    if phi.shape != (3 * n, 3 * n):
        raise ValueError(f"force constants must be [{n}, {n}, 3, 3] or [{3 * n}, {3 * n}], got {phi.shape}")
    if not np.all(np.isfinite(phi)):
        raise ValueError("force constants contain NaN or infinite values")
    return 0.5 * (phi + phi.T)


def _mass_weighted_translations(masses: np.ndarray) -> np.ndarray:
    """``[3N, 3]``: the uniform translations in mass-weighted coordinates (``√M_i δ_cd``), orthonormal."""
    t = np.kron(np.sqrt(masses)[:, None], np.eye(3))  # [3N, 3]
    return t / np.linalg.norm(t[:, 0])
