"""The physics model's ε for the crystal on screen: the shipped rule (``assets/physics/physics.json``, chosen on the
validation splits) applied to the selected ensemble's mean, the ``electronic`` model's ε∞ and the physics ε_ion that
the *Why high-κ?* tab computed (:mod:`goectp.physics.model` does the same for ``goectp predict --model physics``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from pymatgen.core import Structure

from explorer.models import ENSEMBLE_MEAN


def model_ionic(models: Any, structure: Structure | None) -> tuple[np.ndarray | None, str]:
    """``(ε_ion [3, 3] or None, what)``: the ionic part the selected model (:class:`explorer.models.ModelSelector`)
    predicts for ``structure``, when it has one (its target, or the ionic part of decomposed members)."""
    if models is None or structure is None:
        return None, "no model"
    try:
        target = models.target
        if target == "ionic":
            mean, _ = models.predict_one(structure)
            return mean, f"the model {models.model_name} (target ε ionic)"
        parts = models.predict_parts([structure]) if target != "electronic" else {}
    except Exception as exc:
        return None, f"the model failed: {type(exc).__name__}: {exc}"
    if "ionic" in parts:
        count = len(parts["ionic"])
        total = models.n_members if models.mode == ENSEMBLE_MEAN else 1
        return parts["ionic"][:, 0].mean(axis=0), f"the ionic part of {count} of the {total} members"
    return None, f"the model {models.model_name} predicts ε {target} with no ionic part apart"


def shipped_physics_config() -> Any:
    """``assets/physics/physics.json`` read once per server process (``None`` when it is not shipped)."""
    from goectp.physics.config import PHYSICS_FILE, PhysicsConfig
    from goectp.registry import assets_dir

    path = assets_dir() / PHYSICS_FILE
    if not path.is_file():
        return None
    return pn.state.as_cached(f"goectp-physics-config-{path}-{path.stat().st_mtime_ns}", PhysicsConfig.load, path=path)


def shipped_force_field() -> str:
    """The force field of the shipped ``physics`` model (:func:`goectp.physics.config.shipped_force_field`, from the
    process-cached description): the explorer computes the physics term with it, so the corrected total is the
    model's own."""
    from goectp.physics.config import DEFAULT_FORCE_FIELD

    config = shipped_physics_config()
    return config.force_field if config is not None else DEFAULT_FORCE_FIELD


def resolve_name(name: str | None) -> str | None:
    """A shipped model's folder name (an alias such as ``default`` resolved)."""
    from goectp.registry import model_aliases

    return model_aliases().get(name, name) if name else name


def shared_electronic_prediction(structure: Structure, name: str) -> np.ndarray:
    """``[3, 3]`` ε∞ of ``structure`` by the shipped model ``name`` (loaded once per server process)."""
    from goectp.api import predict
    from goectp.registry import load_model

    model = pn.state.as_cached(f"goectp-model-{name}-physics", load_model, path_or_name=name)
    return predict(structure, model)[0]


def corrected_total(
    result: Any, structure: Structure | None, models: Any, forces: str | None = None
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """``(ε of the shipped physics model, the learned ε it corrects, what)`` for ``structure`` (``result``: its
    :class:`~goectp.physics.predict.IonicPhysics`; ``models``: the session's model selector; ``forces``: the name of
    the force field ``result`` was computed with), or ``(None, None, why not)``: the rule of
    ``assets/physics/physics.json`` applied to the selected model's mean, the ``electronic`` model's ε∞ and this
    view's ε_ion (:mod:`goectp.physics.model`), only when ε_ion comes from the force field the rule was fitted on."""
    config = shipped_physics_config()
    if config is None or result is None or models is None or structure is None:
        return None, None, "no physics model description (assets/physics/physics.json)"
    if forces is not None and forces != config.force_field:  # θ and s were fitted on that force field's ε_ion
        return None, None, f"the physics model's rule is fitted on {config.force_field} force constants, not {forces}"
    if resolve_name(models.model_name) != resolve_name(config.total_model) or models.mode != ENSEMBLE_MEAN:
        return None, None, f"the physics model corrects the {config.total_model!r} ensemble mean: select it above"
    try:
        total, _ = models.predict([structure])
        electronic = shared_electronic_prediction(structure, config.electronic_model)
    except Exception as exc:
        return None, None, f"the learned part failed: {type(exc).__name__}: {exc}"
    n_cell, unstable = len(result.cell), result.modes.num_unstable
    usable = term_usable(result, config)
    eps = config.combine(total[0], electronic, result, usable)
    if not usable:
        why = f"{n_cell} atoms > {config.max_sites}" if n_cell > config.max_sites else f"{unstable} unstable mode(s)"
        kept = " with the rule's size factor" if config.rule == "gated" else ""
        return eps, total[0], f"physics term not used ({why}): the {config.total_model!r} prediction{kept}"
    if config.rule == "gated":
        what = f"a weight per crystal, s = {config.scale:.3g}"
        if unstable:
            what += f"; {unstable} unstable mode(s) left out of the sum"
        return eps, total[0], f"rule 'gated' ({what}), chosen on validation"
    return (
        eps,
        total[0],
        f"rule {config.rule!r} (w = {config.weight:g}, s = {config.scale:.3g}), chosen on validation",
    )


def term_usable(result: Any, config: Any) -> bool:
    """Whether the physics model uses the term of ``result`` (an :class:`~goectp.physics.predict.IonicPhysics`):
    a cell within ``max_sites`` and no unstable mode, unless the rule keeps the stable ones."""
    return len(result.cell) <= config.max_sites and (result.modes.num_unstable == 0 or config.keeps_unstable)


def corrected_sigma(result: Any, structure: Structure | None, models: Any) -> float | None:
    """σ of the physics model's ε̄ for ``structure``, as ``goectp predict --model physics`` gives it: the selected
    ensemble's calibrated σ of ε̄ times the shipped factor of the crystal's group (``sigma_scale``: with the term,
    or without it for unstable modes; 1 otherwise); ``None`` without a physics description, a result or a
    calibration."""
    config = shipped_physics_config()
    if config is None or result is None or models is None or structure is None or models.calibration is None:
        return None
    try:
        sigma = float(models.statistics([structure])["eps_mean_std"][0])
    except Exception:
        return None
    return sigma * config.sigma_factor(term_usable(result, config), result.modes.num_unstable > 0)
