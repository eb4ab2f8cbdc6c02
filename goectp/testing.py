r"""Equivariance testing for crystal models, in the spirit of e3nn's ``util/test.py``: one copy, used by the tests,
the explorer's live check and notebook 01.

A model ``f`` maps a crystal ``X`` (lattice and atoms) to a tensor. Turning the crystal by an orthogonal ``R``
(``x → R x`` for every lattice vector and atom, ``det R = ±1``) must turn the output by the representation ``ρ(R)``:

.. math::

    f(RX) = ρ(R)\, f(X),\qquad
    ρ(R)\,s = s,\quad ρ(R)\,v = R v,\quad ρ(R)\,T = R T R^\top

for a scalar, a vector and a rank-2 tensor. A *pseudo*-quantity (e.g. the volume signed by the handedness of the
basis, or an axial vector) picks up one more factor ``det R``: ``ρ(R) T = (\det R)\, R T R^\top``.

The test rotates the *structure* (:func:`rotate_structure`) and lets ``f`` rebuild everything from it, graph
included; rotating a finished graph would only test that matrix products commute. ``R`` is drawn from the Haar
measure (:func:`random_orthogonal`), so no direction is privileged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

#: Default absolute tolerance: far above float64 round-off of an exact model (~1e-14), far below any real error.
ATOL = 1e-5


def random_orthogonal(seed: int | np.random.Generator | None = None, reflection: bool | None = False) -> np.ndarray:
    """A Haar-random ``(3, 3)`` orthogonal matrix.

    A uniform unit quaternion ``q ~ N(0, I₄)/|N|`` gives a Haar-uniform rotation (det +1). ``reflection=True``
    returns ``-R`` (det −1: the rotation followed by the point inversion, Haar on the reflections), ``None``
    picks either with probability ½. ``seed`` is an integer, a numpy ``Generator`` (consumed) or ``None``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    if reflection is None:
        reflection = bool(rng.random() < 0.5)
    return -rot if reflection else rot


def check_orthogonal(rot: Any) -> np.ndarray:
    """``rot`` as a float64 ``(3, 3)`` array; ``ValueError`` unless ``R Rᵀ = I`` (to 1e-8)."""
    r = np.asarray(rot, dtype=np.float64)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)) or np.abs(r @ r.T - np.eye(3)).max() > 1e-8:
        raise ValueError("R must be a 3x3 orthogonal matrix")
    return r


def rotate_structure(structure, rot: Any):
    """The crystal turned by ``R``: lattice vectors ``aᵢ → R aᵢ`` (pymatgen rows: ``M → M Rᵀ``), the same fractional
    coordinates, species and site properties, so every atom moves to ``R x``. A new ``Structure``; callers rebuild
    the graph from it."""
    from pymatgen.core import Lattice, Structure

    r = check_orthogonal(rot)
    return Structure(
        Lattice(structure.lattice.matrix @ r.T),
        structure.species_and_occu,
        structure.frac_coords,
        site_properties=structure.site_properties or None,
    )


def transform(rot: Any, value: Any, pseudo: bool = False) -> np.ndarray:
    """``ρ(R) value`` for a scalar ``()``, vector ``(3,)`` or rank-2 ``(3, 3)`` value (see the module docstring);
    ``pseudo`` multiplies by ``det R``."""
    r = check_orthogonal(rot)
    v = np.asarray(value, dtype=np.float64)
    if v.shape == ():
        out = v
    elif v.shape == (3,):
        out = r @ v
    elif v.shape == (3, 3):
        out = r @ v @ r.T
    else:
        raise ValueError(f"expected a scalar, a (3,) vector or a (3, 3) tensor, got shape {v.shape}")
    return out * np.linalg.det(r) if pseudo else out


class EquivarianceCheck(NamedTuple):
    """One comparison: ``f_x = f(X)``, ``f_rx = f(RX)``, ``expected = ρ(R) f(X)``, ``error = max|f_rx − expected|``."""

    rotation: np.ndarray
    f_x: np.ndarray
    f_rx: np.ndarray
    expected: np.ndarray
    error: float


def equivariance_check(
    fn: Callable, structure, rot: Any, *, pseudo: bool = False, batched: bool = False
) -> EquivarianceCheck:
    """Evaluate ``f`` on ``X`` and on ``rotate_structure(X, R)`` and compare ``f(RX)`` with ``ρ(R) f(X)``.

    ``fn(structure)`` returns one value; with ``batched=True`` it is called once as ``fn([X, RX])`` and returns the
    two values stacked (one batched model call instead of two).
    """
    r = check_orthogonal(rot)
    turned = rotate_structure(structure, r)
    if batched:
        f_x, f_rx = (np.asarray(v, dtype=np.float64) for v in fn([structure, turned]))
    else:
        f_x, f_rx = np.asarray(fn(structure), dtype=np.float64), np.asarray(fn(turned), dtype=np.float64)
    expected = transform(r, f_x, pseudo)
    if f_rx.shape != expected.shape:
        raise ValueError(f"f(RX) has shape {f_rx.shape}, f(X) {f_x.shape}")
    return EquivarianceCheck(r, f_x, f_rx, expected, float(np.abs(f_rx - expected).max(initial=0.0)))


def equivariance_error(fn: Callable, structure, rot: Any, *, pseudo: bool = False, batched: bool = False) -> float:
    """``max |f(RX) − ρ(R) f(X)|`` (for a rank-2 output ``max |f(RX) − R f(X) Rᵀ|``, times ``det R`` if pseudo)."""
    return equivariance_check(fn, structure, rot, pseudo=pseudo, batched=batched).error


def assert_equivariant(
    fn: Callable,
    structure,
    n: int = 4,
    atol: float = ATOL,
    *,
    seed: int = 0,
    rotations: Sequence[Any] | None = None,
    pseudo: bool = False,
    batched: bool = False,
) -> list[float]:
    """Assert ``f(RX) = ρ(R) f(X)`` within ``atol`` for ``n`` Haar-random ``R`` (alternately rotations and
    reflections, so both kinds are always tested) or the given ``rotations``; returns the errors.

    Raises ``AssertionError`` naming the worst ``R`` (its det and entries) and the error.
    """
    rng = np.random.default_rng(seed)
    mats = (
        [check_orthogonal(r) for r in rotations]
        if rotations is not None
        else [random_orthogonal(rng, reflection=bool(i % 2)) for i in range(n)]
    )
    errors = [equivariance_error(fn, structure, r, pseudo=pseudo, batched=batched) for r in mats]
    worst = int(np.argmax(errors))
    if not errors[worst] <= atol:  # also catches NaN
        r = mats[worst]
        kind = "pseudo-" if pseudo else ""
        raise AssertionError(
            f"not {kind}equivariant: max|f(RX) - ρ(R) f(X)| = {errors[worst]:.3e} > atol {atol:g} "
            f"for R #{worst} of {len(mats)} (det R = {np.linalg.det(r):+.0f}):\n{np.array2string(r, precision=4)}\n"
            f"errors: {', '.join(f'{e:.1e}' for e in errors)}"
        )
    return errors
