"""Public entry points: ``build_model``, ``load_model``, ``predict``, ``predict_summary``.

The public names of the modules underneath are re-exported here: checkpoint I/O (:mod:`goectp.checkpoint`), the
shipped-model registry (:mod:`goectp.registry`), :class:`~goectp.models.Ensemble` and the device choice. Every
prediction goes through :func:`goectp.inference.run_model` (one pass per member).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from goectp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from goectp.device import default_device
from goectp.inference import graphs_for, run_model
from goectp.models import Ensemble, GoeCTP, GoeCTPConfig, prediction_target
from goectp.registry import assets_dir, available_models, load_model
from goectp.structures import MAX_SITES, load_structures

__all__ = [
    "CheckpointError",
    "Ensemble",
    "assets_dir",
    "available_models",
    "build_model",
    "default_device",
    "graphs_for",
    "load_checkpoint",
    "load_model",
    "predict",
    "predict_graphs",
    "predict_graphs_and_parts",
    "predict_summary",
    "prediction_target",
    "save_checkpoint",
]


def build_model(variant: str = "goectp", **config: Any) -> GoeCTP:
    """Build a GoeCTP model: ``variant`` is 'goectp', 'mat' or 'icom'; other keywords go to :class:`GoeCTPConfig`."""
    return GoeCTP(GoeCTPConfig(variant=variant, **config))


def predict_graphs(
    graphs: list,
    model: nn.Module,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    use_frame: bool | None = None,
) -> np.ndarray:
    """Predict from prebuilt graphs: ``[n, 3, 3]`` (or ``[M, n, 3, 3]`` for an ensemble)."""
    out = run_model(graphs, model, device=device, batch_size=batch_size, use_frame=use_frame).predictions
    return out if isinstance(model, Ensemble) else out[0]


def predict_graphs_and_parts(
    graphs: list, model: nn.Module, device: str | torch.device | None = None, batch_size: int = 64
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`predict_graphs`, and the ε∞ and ionic parts of the members that predict them apart (sum members),
    from the same pass: ``{"electronic": [S, n, 3, 3], "ionic": [S, n, 3, 3]}`` (``{}`` when none does)."""
    run = run_model(graphs, model, device=device, batch_size=batch_size)
    return (run.predictions if isinstance(model, Ensemble) else run.predictions[0]), run.parts


def _is_physics(model: Any) -> bool:
    from goectp.physics.config import PHYSICS_MODEL_NAME

    return isinstance(model, str) and model == PHYSICS_MODEL_NAME


def predict(
    structures: Any,
    model: nn.Module | str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    return_std: bool = False,
    use_frame: bool | None = None,
    max_sites: int = MAX_SITES,
    calibrated: bool = True,
):
    """Predict dielectric tensors.

    Args:
        structures: a pymatgen ``Structure``, ASE ``Atoms``, CIF/POSCAR/extxyz path, or a list of them.
        model: a model, an :class:`Ensemble`, or a name/path for :func:`load_model` (default: ``"default"``).
        device: torch device; CUDA is used when available and nothing is given.
        return_std: for an ensemble, also return σ of each component: the **calibrated** σ when the ensemble
            ships a ``calibration.json`` (:mod:`goectp.uncertainty`), else the raw member std (population std).
        calibrated: ``False`` returns the raw member std even for a calibrated ensemble.
        use_frame: ``False`` runs the non-equivariant backbone alone (for demonstrations).

    Returns:
        ``(n, 3, 3)`` array (the ensemble mean for an ensemble), and ``(n, 3, 3)`` std if ``return_std``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if _is_physics(model):  # the default corrected by the physics term (σ: the default's × sigma_scale)
        records = predict_summary(structures, model, device, batch_size, max_sites, calibrated)
        mean = np.array([r["eps_physics"] for r in records])
        return (mean, np.array([r["tensor_std"] for r in records])) if return_std else mean
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or "default")
    run = run_model(graphs_for(structures, model, max_sites=max_sites), model, device, batch_size, use_frame)
    out = run.predictions if isinstance(model, Ensemble) else run.predictions[0]
    if not return_std:
        return out.mean(axis=0) if isinstance(model, Ensemble) else out
    if not isinstance(model, Ensemble):
        return out, np.zeros_like(out)
    mean, std = out.mean(axis=0), out.std(axis=0)
    cal = run.calibration if calibrated else None
    if cal is not None:  # the prediction is unchanged; only σ is rescaled
        std = cal.sigma("tensor", std, mean, out.shape[0])
    return mean, std


def predict_summary(
    structures: Any,
    model: nn.Module | str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    max_sites: int = MAX_SITES,
    calibrated: bool = True,
    physics: bool = False,
    born_model: Any = None,
    forces: Any = None,
) -> list[dict[str, Any]]:
    """ε̄ ± σ, α ± σ, eigenvalues ± σ and the tensor ± σ of each structure, with out-of-distribution flags.

    All statistics come from :func:`goectp.tensor_stats.ensemble_statistics` (α = inf and ``nonpositive`` when
    λmin <= 0); σ is calibrated when the ensemble ships a calibration (``"calibrated": True`` in each record; the
    raw member spreads are kept as ``eps_mean_std_raw``/``anisotropy_std_raw``). ``"ood"`` is
    ``{"flag", "reasons", "embedding_score"}`` (``None`` without a calibration: nothing to compare against).
    The means equal :func:`predict`'s. ``"parts"``: the ε∞ (``electronic``) and ``ionic`` tensors, the mean over
    the members that predict them apart (absent when none does).

    ``physics=True`` adds ``"physics"``: ε_ion from predicted Born charges and force constants
    (:func:`goectp.physics.predict.ionic_physics`, ``born_model`` and ``forces`` passed on, ``forces=None`` being the
    ``physics`` model's own force field; seconds per structure,
    see its docstring): the tensor, ε̄_ion, the unstable modes, the dominant modes and the charges.

    ``model="physics"``: the shipped ``physics`` model (:class:`goectp.physics.model.PhysicsModel`): the default's
    records plus ``"eps_physics"`` (the corrected tensor), ``"eps_physics_mean"``, ``"physics_used"`` (or
    ``"physics_skipped"``: why not), ``"eps_electronic"`` and ``"physics"``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if _is_physics(model):
        from goectp.physics.model import PhysicsModel

        records = PhysicsModel.load().predict_summary(load_structures(structures, max_sites), forces, calibrated)
        return [{**r, "model": "physics"} for r in records]
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or "default")
    loaded = load_structures(structures, max_sites)
    run = run_model(graphs_for(loaded, model, max_sites=max_sites), model, device=device, batch_size=batch_size)
    records = run.summary(calibrated)
    for i, rec in enumerate(records):
        if run.parts:
            rec["parts"] = {name: value[:, i].mean(axis=0).tolist() for name, value in run.parts.items()}
        if physics:
            from goectp.physics.predict import ionic_physics

            rec["physics"] = ionic_physics(loaded[i], born_model, forces).summary()
    return records
