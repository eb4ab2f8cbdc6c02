"""The shipped ``physics`` model: the default ensemble's prediction corrected by the physics term.

``assets/physics/physics.json`` (:class:`goectp.physics.config.PhysicsConfig`, chosen on the validation splits by
``benchmarks/experiments/physics_stack.py``) says how: the rule of :mod:`goectp.physics.combine` with its scale ``s``
and gate θ, the learned models it combines (``default`` for the total, ``electronic`` for ε∞), the Born-charge
ensemble and the force field, whether crystals with unstable modes keep a term, and the largest canonical cell it
computes force constants for (bigger cells keep the default's prediction, times the rule's size factor). The OOD
flag is the default's; σ is the default's calibrated σ times a factor for crystals with the term and another for
those left without it by unstable modes (``sigma_scale``, fitted to the coverage bands on validation; its test
coverage is in docs/physics.md); a cell over ``max_sites`` keeps the default's σ with its prediction.

    model = PhysicsModel.load()
    records = model.predict_summary(["TiO2.cif"])   # predict_summary's records + "eps_physics", "physics"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from goectp.physics.config import PHYSICS_FILE, PhysicsConfig


class PhysicsModel:
    """The default's prediction with the physics term (see the module docstring)."""

    def __init__(self, config: PhysicsConfig, total: Any, electronic: Any, born: Any) -> None:
        self.config, self.total, self.electronic, self.born = config, total, electronic, born

    @classmethod
    def load(cls, path: str | Path | None = None) -> PhysicsModel:
        from goectp.physics.predict import load_born_model
        from goectp.registry import assets_dir, load_model

        path = Path(path) if path is not None else assets_dir() / PHYSICS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no physics model at {path}: see benchmarks/experiments/physics_model.py")
        config = PhysicsConfig.load(path)
        born = load_born_model(assets_dir() / config.born_model)
        # float64 throughout: with the standard cell's force constants the corrected tensor is then the same for every
        # description of a crystal to ~1e-10 (float32 learned parts alone would leave ~1e-6)
        total, electronic = load_model(config.total_model).double(), load_model(config.electronic_model).double()
        return cls(config, total, electronic, born)

    def predict_summary(self, structures: Any, forces: Any = None, calibrated: bool = True) -> list[dict[str, Any]]:
        """:func:`goectp.api.predict_summary`'s records of the total model (a calibrated σ, unless ``calibrated`` is
        false, times the ``sigma_scale`` factor of the crystal's group), plus ``"eps_electronic"`` (ε∞),
        ``"physics"`` (:meth:`~goectp.physics.predict.IonicPhysics.summary`, or ``None`` with
        ``"physics_skipped"`` saying why), ``"eps_physics"`` (the corrected tensor),
        ``"eps_physics_mean"``, ``"physics_used"`` and ``"sigma_factor"`` (the factor applied to every σ)."""
        from goectp.inference import graphs_for, run_model
        from goectp.structures import load_structures

        loaded = load_structures(structures)
        total = run_model(graphs_for(loaded, self.total), self.total)
        records = total.summary(calibrated)
        corrections = self.correct(loaded, total.predictions.mean(axis=0), forces)
        for rec, correction in zip(records, corrections):
            rec.update(correction)
            if not rec["calibrated"]:  # the factor belongs to the calibrated σ, not to the members' raw spread
                rec["sigma_factor"] = 1.0
            for key in ("eps_mean_std", "anisotropy_std"):
                rec[key] *= rec["sigma_factor"]
            for key in ("eigenvalues_std", "tensor_std"):
                rec[key] = (np.asarray(rec[key]) * rec["sigma_factor"]).tolist()
        return records

    def correct(self, structures: Any, totals: np.ndarray, forces: Any = None) -> list[dict[str, Any]]:
        """The physics correction of learned ``totals [n, 3, 3]`` (the default's mean, e.g. from a screen's table):
        per structure ``"eps_electronic"``, ``"physics"``, ``"physics_skipped"``, ``"physics_used"``,
        ``"eps_physics"``, ``"eps_physics_mean"`` and ``"sigma_factor"`` (the factor on the default's calibrated σ
        for this crystal's group; see :meth:`predict_summary`), without running the default."""
        from goectp.canonical import canonical_cell
        from goectp.inference import graphs_for, run_model
        from goectp.physics.predict import ionic_physics
        from goectp.structures import load_structures

        loaded = load_structures(structures)
        totals = np.asarray(totals, float).reshape(len(loaded), 3, 3)
        electronic = run_model(graphs_for(loaded, self.electronic), self.electronic).predictions.mean(axis=0)
        out = []
        for i, structure in enumerate(loaded):
            term, why = None, None
            n_cell = len(canonical_cell(structure))
            if n_cell > self.config.max_sites:
                why = f"{n_cell} atoms in the primitive cell (force constants up to {self.config.max_sites})"
            else:
                term = ionic_physics(structure, self.born, forces or self.config.force_field)
                if term.modes.num_unstable and not self.config.keeps_unstable:
                    why = f"{term.modes.num_unstable} unstable mode(s) at this geometry"
            usable = term is not None and why is None
            unstable = term is not None and term.modes.num_unstable > 0
            eps = self.config.combine(totals[i], electronic[i], term, usable)
            out.append(
                {
                    "eps_electronic": electronic[i].tolist(),
                    "physics": None if term is None else term.summary(),
                    "physics_skipped": why,
                    "physics_used": bool(usable),
                    "eps_physics": eps.tolist(),
                    "eps_physics_mean": float(np.trace(eps) / 3),
                    "sigma_factor": self.config.sigma_factor(usable, unstable),
                }
            )
        return out
