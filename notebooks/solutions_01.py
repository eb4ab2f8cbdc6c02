"""Reference solutions and graders of notebook 01's exercises (executed in CI through the notebook).

Each exercise has a grader ``grade_*(answer)`` that checks an answer against :mod:`goectp.testing` and returns a
one-line verdict (or raises ``AssertionError`` saying what is wrong), and the reference answer ``solution_*``.
Open this file only after trying the exercise.
"""

from __future__ import annotations

import numpy as np

from goectp.frame import polar_frame
from goectp.testing import (
    equivariance_error,
    random_orthogonal,
    rotate_structure,
    transform,
)


# ---------------------------------------------------------------------------------------------------- exercise 2
def solution_equivariance_error(f, structure, q: np.ndarray) -> float:
    """max |f(QX) − Q f(X) Qᵀ|: rotate the *structure* (f rebuilds its graph), evaluate f twice, compare."""
    turned = rotate_structure(structure, q)
    return float(np.abs(f(turned) - q @ f(structure) @ q.T).max())


def grade_equivariance_error(answer, structure, equivariant, not_equivariant) -> str:
    """The answer must agree with goectp.testing on rotations *and* reflections, for an equivariant f (≈ 0) and a
    non-equivariant one (clearly > 0)."""
    rotations = [random_orthogonal(10 + i, reflection=bool(i % 2)) for i in range(4)]
    for f, label in ((equivariant, "the equivariant f"), (not_equivariant, "the non-equivariant g")):
        for q in rotations:
            mine, ref = answer(f, structure, q), equivariance_error(f, structure, q)
            assert np.isfinite(mine) and abs(mine - ref) <= 1e-9 + 1e-6 * ref, (
                f"for {label} and det Q = {np.linalg.det(q):+.0f} your error is {mine:.3e}, goectp.testing's "
                f"{ref:.3e}: rotate the structure (not the graph) and compare f(QX) with Q f(X) Qᵀ"
            )
    worst_f = max(answer(equivariant, structure, q) for q in rotations)
    worst_g = max(answer(not_equivariant, structure, q) for q in rotations)
    assert worst_f < 1e-5 < 1e-2 < worst_g, f"f: {worst_f:.1e}, g: {worst_g:.1e}"
    return f"equivariant f: {worst_f:.1e}; g alone: {worst_g:.2f} (rotations and reflections)"


# ---------------------------------------------------------------------------------------------------- exercise 3
REFLECTION_PROOF = r"""
Let $R$ be orthogonal with $\det R = -1$ and $L = FH$ the polar decomposition. $RF$ is orthogonal
($(RF)^\top RF = F^\top R^\top R F = I$) and $H$ is still symmetric positive definite, so $RL = (RF)H$ is *a* polar
decomposition of $RL$; it is unique because $L$ is invertible ($H = \sqrt{L^\top L}$ is determined, then
$F = L H^{-1}$). Hence $F(RL) = RF(L)$ and $\det F(RL) = -\det F(L)$: the frame is a reflection exactly when the
basis is left-handed. Nothing in the argument used $\det R = +1$, so
$f(RX) = RF\,g(F^\top R^\top R X)\,F^\top R^\top = R f(X) R^\top$ for reflections too.
"""


def solution_reflected_frame_det(structure) -> tuple[float, float]:
    """det F of the crystal and of its mirror image (z → −z)."""
    mirror = np.diag([1.0, 1.0, -1.0])
    before = np.linalg.det(polar_frame(structure.lattice.matrix.T)[0])
    after = np.linalg.det(polar_frame(rotate_structure(structure, mirror).lattice.matrix.T)[0])
    return float(before), float(after)


def grade_reflected_frame_det(answer, structure) -> str:
    before, after = answer(structure)
    assert abs(abs(before) - 1) < 1e-12 and abs(after + before) < 1e-12, (
        f"det F = {before:+.3f} before and {after:+.3f} after a mirror: a reflection must flip the sign"
    )
    return f"det F = {before:+.0f} → {after:+.0f} under the mirror"


# ---------------------------------------------------------------------------------------------------- exercise 4
def solution_pseudo_expected(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """What a pseudotensor turns into: (det Q) Q T Qᵀ."""
    return np.linalg.det(q) * q @ t @ q.T


def solution_pseudo_model(f):
    """A pseudotensor model from a tensor model f: multiply by det F of the input lattice (det F → det Q det F)."""

    def f_pseudo(structure):
        return np.linalg.det(polar_frame(structure.lattice.matrix.T)[0]) * f(structure)

    return f_pseudo


def grade_pseudo(answers, structure, f) -> str:
    expected, make_model = answers
    rng = np.random.default_rng(3)
    t = rng.normal(size=(3, 3))
    for i in range(4):
        q = random_orthogonal(rng, reflection=bool(i % 2))
        np.testing.assert_allclose(
            expected(q, t), transform(q, t, pseudo=True), atol=1e-12, err_msg="a pseudotensor turns as det Q · Q T Qᵀ"
        )
    model = make_model(f)
    mirror = np.diag([1.0, 1.0, -1.0])
    pseudo = equivariance_error(model, structure, mirror, pseudo=True)
    true = equivariance_error(model, structure, mirror)
    assert pseudo < 1e-5, f"your model is not a pseudotensor: error {pseudo:.1e} under a mirror"
    assert true > 1e-3, "your model still turns like a true tensor under a mirror: where is det F?"
    return f"under a mirror: pseudotensor error {pseudo:.1e}, as a true tensor {true:.1f}"
