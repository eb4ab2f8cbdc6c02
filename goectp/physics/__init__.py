"""The physics of the ionic dielectric response: Born effective charges, Γ-point force constants, and

    ε_ion[a, b] = e² / (ε₀ Ω) Σ_ij Z*_i[a, c] (Φ⁺)[ic, jd] Z*_j[b, d]

(:mod:`goectp.physics.ionic`), the force constants from a universal interatomic potential through phonopy
(:mod:`goectp.physics.phonons`), and the DFPT Born charges of the shared data (:mod:`goectp.physics.born_data`).
"""

from goectp.physics.ionic import (
    E2_OVER_EPS0,
    IonicModes,
    acoustic_sum_rule_error,
    enforce_acoustic_sum_rule,
    ionic_dielectric,
    ionic_modes,
)

__all__ = [
    "E2_OVER_EPS0",
    "IonicModes",
    "acoustic_sum_rule_error",
    "enforce_acoustic_sum_rule",
    "ionic_dielectric",
    "ionic_modes",
]
