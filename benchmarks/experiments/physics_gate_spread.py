"""Experiment (not adopted): the default's own uncertainty as an input of the physics model's gate.

The shipped ``gated`` rule weighs the physics term by invariants of the two estimates (r = log ε̄_p/ε̄_d, the softest
mode; :func:`goectp.physics.combine.gate_features`). Inverse-variance reasoning says the term should count more
where the learned ensemble is unsure, so this adds ``log(σ_d / ε̄_d)`` — the default's calibrated σ of ε̄ relative
to its ε̄ — as one more gate column, and cross-fits θ as ``physics_stack.py`` does (validation MAE out of fold;
for test split k, θ fitted on the validation records outside it). Result (2026-12-06): docs/physics.md, tenth
session.

    python benchmarks/experiments/physics_gate_spread.py
"""

from __future__ import annotations

import numpy as np
from physics_stack import restarted_nelder_mead
from scipy.special import expit

#: the candidates: θ entries fitted (0, 1: size factor; 2: c₀; 3: r; 5: softest mode; 8: the default's spread)
CANDIDATES = {
    "w(r, ω) + de-shrink (shipped)": [0, 1, 2, 3, 5],
    "w(r, ω, spread) + de-shrink": [0, 1, 2, 3, 5, 8],
    "w(r, spread) + de-shrink": [0, 1, 2, 3, 8],
}
START = np.array([0.0, 0.0, np.log(0.3 / 0.7), 0, 0, 0, 0, 0, 0])  # the blend w = 0.3, as physics_stack.py


def gated_with_spread(theta, default, estimate, unstable, lowest, sigma) -> np.ndarray:
    """:func:`goectp.physics.combine.gated` with a ninth parameter: the weight of ``log(σ_d / ε̄_d)``."""
    from goectp.physics.combine import gate_features

    x, log_d, usable = gate_features(default, estimate, unstable, lowest)
    spread = np.log(np.maximum(sigma, 1e-6) / np.maximum(np.exp(log_d), 1e-3)) * usable
    w = usable * expit(theta[2] + np.concatenate([x, spread[:, None]], axis=1) @ theta[3:])
    step = np.where(usable[:, None, None], np.nan_to_num(estimate) - default, 0.0)
    return (default + w[:, None, None] * step) * np.exp(theta[0] + theta[1] * log_d)[:, None, None]


def fit(columns: tuple, free: list[int]) -> np.ndarray:
    """θ minimising the component MAE on ``columns`` (:func:`physics_stack.restarted_nelder_mead`)."""
    *inputs, true = columns

    def loss(values):
        theta = START.copy()
        theta[free] = values
        return np.abs(gated_with_spread(theta, *inputs) - true).mean()

    theta = START.copy()
    theta[free] = restarted_nelder_mead(loss, START[free])
    return theta


def main() -> None:
    from physics_model import cached_physics_tensors, drop_large_cells, physics_scale, tail_ratio

    from goectp.data.dielectric import read_dielectric_json
    from goectp.data.paths import data_dir
    from goectp.data.splits import SPLIT_SEEDS, split_masks
    from goectp.evaluation.metrics import headline_metrics
    from goectp.registry import resolve_model_path
    from goectp.tensor_stats import mean_eigenvalue
    from goectp.uncertainty import Calibration, heldout_predictions, split_means, split_members

    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    held_d, held_e = heldout_predictions("default"), heldout_predictions("electronic")
    sets = split_masks(len(records), SPLIT_SEEDS)
    default, electronic = split_means(held_d, sets["test"]), split_means(held_e, sets["test"])
    calibration = Calibration.load(resolve_model_path("default"))
    sigma = [  # the calibrated σ of ε̄ of split k's members (held out on its validation and test records)
        calibration.sigma(
            "eps_mean", mean_eigenvalue(held_d["members"][o]).std(axis=0), mean_eigenvalue(default[k]), len(o)
        )
        for k, o in enumerate(split_members(held_d, sets["test"]))
    ]
    true = held_d["true"]
    phys = cached_physics_tensors(records, sets, "sevennet-l3i5", 0.0, False)
    drop_large_cells(phys, 40)  # as shipped
    estimate = electronic + round(physics_scale(records, sets, phys), 4) * phys["eps"]
    estimate = np.where((phys["unstable"] == 0)[..., None, None], estimate, np.nan)  # stable only, as shipped
    splits = range(len(SPLIT_SEEDS))

    def columns(pool: list) -> tuple:
        parts = [
            (default[j][m], estimate[j][m], phys["unstable"][j][m], phys["lowest"][j][m], sigma[j][m], true[m])
            for j, m in pool
        ]
        return tuple(np.concatenate(column) for column in zip(*parts))

    print("| candidate | val MAE (out of fold) | per fold | test MAE | ε̄ Spearman | tail ratio |")
    print("|---|---|---|---|---|---|")
    for name, free in CANDIDATES.items():
        val = []
        for f in splits:
            theta = fit(columns([(j, sets["val"][j] & ~sets["val"][f]) for j in splits if j != f]), free)
            *inputs, t = columns([(f, sets["val"][f])])
            val.append(float(np.abs(gated_with_spread(theta, *inputs) - t).mean()))
        scores = []
        for k in splits:
            theta = fit(columns([(j, sets["val"][j] & ~sets["test"][k]) for j in splits]), free)
            *inputs, t = columns([(k, sets["test"][k])])
            pred = gated_with_spread(theta, *inputs)
            scores.append({**headline_metrics(pred, t), "tail": tail_ratio(pred, t)})
        mean = {key: np.mean([s[key] for s in scores]) for key in ("mae", "spearman_eps_mean", "tail")}
        print(
            f"| {name} | {np.mean(val):.4f} | {' / '.join(f'{v:.3f}' for v in val)} | {mean['mae']:.4f} | "
            f"{mean['spearman_eps_mean']:.4f} | {mean['tail']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
