"""A learned, per-crystal weight for the physics term: does it lift the ranking and the tail past the fixed blend?

``physics_model.py`` chose one global rule (``blend``: ``ε_d + w (ε_p − ε_d)``, ``w = 0.3``). Here the weight and an
isotropic scale depend on invariant scalars of the crystal, so the physics term can count where it is trustworthy
(no soft or unstable mode, a physics estimate close to the learned one) and the learned tensor can be de-shrunk
where it is high (the learned models regress toward the mean):

    ε = exp(a + b · log ε̄_d) · [ε_d + w(x) (ε_p − ε_d)],   w(x) = sigmoid(c₀ + c · x)

with ``x`` = (``log(ε̄_p / ε̄_d)``, ``|log(ε̄_p / ε̄_d)|``, lowest stable mode frequency, number of unstable modes,
``log ε̄_d``) and
``ε_p = ε∞ + s ε_phys`` as in :mod:`goectp.physics.combine` (for crystals with unstable modes ``ε_phys`` sums the
stable ones). Every factor is a scalar invariant times an equivariant tensor, so the result turns as ``R ε Rᵀ``.

Cross-fitting, so no number is in-sample: for test split ``k`` the parameters are fitted on the **validation**
records of every split ``j`` (held out from the split-``j`` members that predict them) that are not in test split
``k``; the loss is the component MAE (``scipy.optimize.minimize``, Nelder–Mead from the fixed blend, restarted where
it stops until the loss no longer falls). Validation
MAE is reported out of fold (5 folds over the validation records).

    python benchmarks/experiments/physics_stack.py   # after physics_model.py's inputs exist (runs/born, the FC cache)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OUT = Path("runs/physics")
LOSS = "mae"  # or "log" (--loss): what the parameters are fitted to
#: Component errors below this count as covered in the last σ column: off-diagonal components that are zero by
#: symmetry come out as float noise with a σ of zero, and would otherwise count as misses
NOISE = 0.05
#: Nelder–Mead restarts from its own result (a fit from the blend stalled at validation MAE 1.2951; restarted, 1.2628)
RESTARTS = 8


def fit(default, estimate, unstable, lowest, true, free: list[int], start: np.ndarray) -> np.ndarray:
    """θ of :func:`goectp.physics.combine.gated`: the ``free`` entries fitted (Nelder–Mead from ``start``) to the
    component MAE, or to ``|log ε̄ ratio|`` with ``--loss log``."""
    from goectp.physics.combine import gated

    true_mean = np.trace(true, axis1=-2, axis2=-1) / 3

    def loss(t):
        theta = start.copy()
        theta[free] = t
        pred = gated(theta, default, estimate, unstable, lowest)
        if LOSS == "log":  # relative error of ε̄: what a ranking and the tail ratio see
            pred_mean = np.trace(pred, axis1=-2, axis2=-1) / 3
            return np.abs(np.log(np.maximum(pred_mean, 1e-3) / np.maximum(true_mean, 1e-3))).mean()
        return np.abs(pred - true).mean()

    theta = start.copy()
    theta[free] = restarted_nelder_mead(loss, start[free])
    return theta


def restarted_nelder_mead(loss, x0: np.ndarray) -> np.ndarray:
    """The minimum of ``loss`` by Nelder–Mead from ``x0``, restarted where it stops (up to :data:`RESTARTS` times)
    until the loss no longer falls: the simplex stalls on a piecewise-linear loss like the MAE."""
    from scipy.optimize import minimize

    options = {"maxiter": 4000, "xatol": 1e-4, "fatol": 1e-6}
    res = minimize(loss, x0, method="Nelder-Mead", options=options)
    for _ in range(RESTARTS):
        again = minimize(loss, res.x, method="Nelder-Mead", options=options)
        if again.fun >= res.fun - 1e-7:
            break
        res = again
    return res.x


def sigma_points(pred, true, sigma_mean, sigma_tensor, sigma_alpha, finite, unstable) -> dict[str, np.ndarray]:
    """What the σ fit needs of some records: the errors of ε̄, of the components and of α = λmax/λmin, the
    default's calibrated σ of each, whether the physics term was used (a finite estimate) and whether the crystal
    has unstable modes."""
    from goectp.tensor_stats import anisotropy_ratio, mean_eigenvalue

    alpha = [anisotropy_ratio(np.linalg.eigvalsh(0.5 * (t + np.swapaxes(t, -1, -2))))[0] for t in (pred, true)]
    with np.errstate(invalid="ignore"):
        err_alpha = np.abs(alpha[0] - alpha[1])
    return {
        "err": np.abs(mean_eigenvalue(pred) - mean_eigenvalue(true)),
        "sigma": sigma_mean,
        "err_tensor": np.abs(pred - true),
        "sigma_tensor": sigma_tensor,
        "err_alpha": err_alpha,
        "sigma_alpha": sigma_alpha,
        "used": finite.all(axis=(1, 2)),
        "unstable": np.asarray(unstable) > 0,
    }


def fit_sigma_scale(points: dict[str, list[dict]]) -> tuple[list[float], dict[str, float]]:
    """``[k_term, k_unstable]``: factors on the default's calibrated σ for crystals with the physics term and for
    those left without it by unstable modes, fitted to the coverage bands (:func:`goectp.uncertainty.fit_factor`)
    on the out-of-fold validation points (crystals without force constants keep the default's prediction and its
    σ: factor 1); prints the coverage on validation and test before and after, and returns the test figures."""
    from goectp.uncertainty import coverage, fit_factor

    val, test = ({k: np.concatenate([p[k] for p in points[part]]) for k in points[part][0]} for part in points)
    groups = (val["used"], ~val["used"] & val["unstable"])
    scale = [round(fit_factor(val["err"][g], val["sigma"][g]), 4) if g.any() else 1.0 for g in groups]
    print(
        "\n| σ of the physics model | records | ±1σ of ε̄ | ±2σ of ε̄ | ±2σ of the components | the same, an error "
        f"< {NOISE} counting as covered | ±2σ of α |"
    )
    print("|---|---|---|---|---|---|---|")
    out = {}
    for part, pts in (("validation (out of fold)", val), ("test", test)):
        factor = np.where(pts["used"], scale[0], np.where(pts["unstable"], scale[1], 1.0))
        groups = (
            ("term used", pts["used"]),
            ("term not used", ~pts["used"]),
            ("  of which unstable modes", ~pts["used"] & pts["unstable"]),
            ("  of which no force constants (cell > max_sites)", ~pts["used"] & ~pts["unstable"]),
            ("all", pts["used"] | True),
        )
        for group, g in groups:
            for label, f in (("default's σ", np.ones_like(factor)), (f"× {scale}", factor)):
                sig, sig_t = f * pts["sigma"], f[:, None, None] * pts["sigma_tensor"]
                c1, c2 = coverage(pts["err"][g], sig[g], 1), coverage(pts["err"][g], sig[g], 2)
                c2t = coverage(pts["err_tensor"][g], sig_t[g], 2)
                c2n = float(np.mean((pts["err_tensor"][g] <= 2 * sig_t[g]) | (pts["err_tensor"][g] < NOISE)))
                c2a = coverage(pts["err_alpha"][g], f[g] * pts["sigma_alpha"][g], 2)
                print(
                    f"| {part}, {group}, {label} | {int(g.sum())} | {c1:.3f} | {c2:.3f} | {c2t:.3f} | {c2n:.3f} | "
                    f"{c2a:.3f} |"
                )
                if part == "test" and group == "all" and label != "default's σ":
                    out = {"coverage_1sigma_mean_fitted": round(c1, 4), "coverage_2sigma_mean_fitted": round(c2, 4)}
    return scale, out


def main() -> None:
    from physics_model import FORCE_FIELD_MODELS, cached_physics_tensors, drop_large_cells, physics_scale, tail_ratio

    from goectp.data.dielectric import read_dielectric_json
    from goectp.data.paths import data_dir
    from goectp.data.splits import SPLIT_SEEDS, split_masks
    from goectp.evaluation.metrics import headline_metrics
    from goectp.physics.combine import gated
    from goectp.registry import resolve_model_path
    from goectp.tensor_stats import ensemble_statistics, mean_eigenvalue
    from goectp.uncertainty import Calibration, heldout_predictions, split_means, split_members

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--force-field", default="sevennet", choices=sorted(FORCE_FIELD_MODELS))
    p.add_argument("--only-with", default=None, help="another force field: use only the records both have")
    p.add_argument("--loss", choices=["mae", "log"], default="mae", help="fit to component MAE or |log ε̄ ratio|")
    p.add_argument("--write", action="store_true", help="ship the best candidate on validation in physics.json")
    p.add_argument(
        "--max-sites", type=int, default=None, help="use the physics term only for canonical cells up to this size"
    )
    p.add_argument(
        "--near-zero-stable",
        action="store_true",
        help="unstable only below -SOFT_MODE_THZ (a mode within 0.3 THz of zero is left out of the sum either way)",
    )
    p.add_argument(
        "--charge-stretch",
        type=float,
        default=0.0,
        help="an experiment: predicted Z* moved away from the element's training mean, Z* + β (Z* − m_e I)",
    )
    p.add_argument(
        "--dft-charges",
        action="store_true",
        help="an oracle: DFT's Born charges wherever the Born file has them (how far perfect charges would go)",
    )
    args = p.parse_args()
    if args.write and args.dft_charges:
        p.error("--write ships a model: the oracle uses DFT charges a prediction does not have")
    if args.write and args.charge_stretch:
        p.error("--write ships a model: the shipped path does not stretch the charges")
    if args.write and args.near_zero_stable:
        p.error("--write ships a model: the library counts every mode with ω < 0 as unstable (IonicModes.num_unstable)")
    if args.write and args.only_with:
        p.error("--write ships a model: not with --only-with (a paired comparison on part of the records)")
    global LOSS
    LOSS = args.loss
    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    held_d, held_e = heldout_predictions("default"), heldout_predictions("electronic")
    sets = split_masks(len(records), SPLIT_SEEDS)
    default, electronic = split_means(held_d, sets["test"]), split_means(held_e, sets["test"])
    calibration = Calibration.load(resolve_model_path("default"))
    own = split_members(held_d, sets["test"])
    sigma = [
        calibration.sigma("tensor", held_d["members"][o].std(axis=0), default[k], len(o)) for k, o in enumerate(own)
    ]
    sigma_mean = [  # the calibrated σ of ε̄ (the quantity the calibration is fitted on), as predict_summary reports it
        calibration.sigma(
            "eps_mean", mean_eigenvalue(held_d["members"][o]).std(axis=0), mean_eigenvalue(default[k]), len(o)
        )
        for k, o in enumerate(own)
    ]
    sigma_alpha = [  # the calibrated σ of α = λmax/λmin (propagated from the eigenvalues' σ), as predict_summary's
        ensemble_statistics(held_d["members"][o], calibration)["anisotropy_std"] for o in own
    ]
    true = held_d["true"]

    phys = cached_physics_tensors(records, sets, args.force_field, args.charge_stretch, args.dft_charges)
    if args.near_zero_stable:
        changed = int((phys["unstable"] != phys["unstable_beyond_noise"]).any(axis=0).sum())
        print(f"--near-zero-stable: {changed} records with every unstable mode within 0.3 THz of zero count as stable")
        phys["unstable"] = phys["unstable_beyond_noise"]
    if args.only_with:  # a paired comparison of two force fields: the records both cover
        other = cached_physics_tensors(records, sets, args.only_with)
        missing = ~np.isfinite(other["eps"]).all(axis=(2, 3))
        phys["eps"][missing] = np.nan
    if args.max_sites is not None:  # as the shipped model does: larger cells keep the learned tensor
        dropped = drop_large_cells(phys, args.max_sites)
        print(f"physics term dropped for {dropped} records over {args.max_sites} sites")
    shipped_path = Path("assets/physics/physics.json")
    shipped = json.loads(shipped_path.read_text())
    S = len(SPLIT_SEEDS)
    scale = round(physics_scale(records, sets, phys), 4)  # as stored in physics.json
    print(f"{args.force_field}: scale s = {scale:.4f}")
    estimate = electronic + scale * phys["eps"]  # NaN where there are no force constants
    stable_only = np.where((phys["unstable"] == 0)[..., None, None], estimate, np.nan)
    blend = np.array([0.0, 0.0, np.log(0.3 / 0.7), 0, 0, 0, 0, 0])  # the blend, w = 0.3, as a gate
    candidates = {  # (estimate, the θ entries fitted; the others stay at the blend's)
        "blend (shipped)": (stable_only, []),
        "blend, w fitted": (stable_only, [2]),
        "w(x), stable only": (stable_only, [2, 3, 4, 5]),
        "w(x) + de-shrink, stable only": (stable_only, [0, 1, 2, 3, 4, 5]),
        "w(x), unstable kept": (estimate, [2, 3, 4, 5, 6]),
        "w(x) + de-shrink, unstable kept": (estimate, [0, 1, 2, 3, 4, 5, 6]),
        "de-shrink only": (stable_only, [0, 1, 2]),
        "w(r, ω) + de-shrink, stable only": (stable_only, [0, 1, 2, 3, 5]),  # no |r|: monotone in r
        "w(r, ω, unstable) + de-shrink, unstable kept": (estimate, [0, 1, 2, 3, 5, 6]),
        "w(r, ω, ε̄_d) + de-shrink, stable only": (stable_only, [0, 1, 2, 3, 5, 7]),
        "w(r, ω, unstable, ε̄_d) + de-shrink, unstable kept": (estimate, [0, 1, 2, 3, 5, 6, 7]),
    }

    def pooled(est: np.ndarray, pool: list) -> tuple:
        parts = [(default[j][m], est[j][m], phys["unstable"][j][m], phys["lowest"][j][m], true[m]) for j, m in pool]
        return tuple(np.concatenate(column) for column in zip(*parts))

    def fitted(est: np.ndarray, free: list[int], pool: list) -> np.ndarray:
        return fit(*pooled(est, pool), free, blend) if free else blend

    print(
        "| candidate | val MAE (out of fold) | test MAE | ε̄ Spearman | top-5 % recall | tail ratio | ±2σ | ±2σ ε̄ |"
        " θ (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows, errors = {}, {}  # errors[name]: the out-of-fold validation and the test points of the σ fit (below)
    for name, (est, free) in candidates.items():
        val_mae, val_scores = [], []
        errors[name] = {"val": [], "test": []}
        for f in range(S):  # fold f: split f's validation records, fitted on the other splits' (minus these)
            theta = fitted(est, free, [(j, sets["val"][j] & ~sets["val"][f]) for j in range(S) if j != f])
            d, e, u, lo, t = pooled(est, [(f, sets["val"][f])])
            pred = gated(theta, d, e, u, lo)
            val_mae.append(float(np.abs(pred - t).mean()))
            errors[name]["val"].append(
                sigma_points(
                    pred, t, *(q[f][sets["val"][f]] for q in (sigma_mean, sigma, sigma_alpha)), np.isfinite(e), u
                )
            )
            val_scores.append({**headline_metrics(pred, t), "tail_ratio": tail_ratio(pred, t)})
        per_split = []
        for k in range(S):
            theta = fitted(est, free, [(j, sets["val"][j] & ~sets["test"][k]) for j in range(S)])  # no test-k label
            m = sets["test"][k]
            pred = gated(theta, default[k][m], est[k][m], phys["unstable"][k][m], phys["lowest"][k][m])
            h = headline_metrics(pred, true[m])
            h["tail_ratio"] = tail_ratio(pred, true[m])
            h["coverage_2sigma"] = float((np.abs(pred - true[m]) <= 2 * sigma[k][m]).mean())
            miss = np.abs(mean_eigenvalue(pred) - mean_eigenvalue(true[m]))
            h["coverage_2sigma_mean"] = float((miss <= 2 * sigma_mean[k][m]).mean())
            h["theta"] = theta.tolist()
            per_split.append(h)
            errors[name]["test"].append(
                sigma_points(
                    pred,
                    true[m],
                    sigma_mean[k][m],
                    sigma[k][m],
                    sigma_alpha[k][m],
                    np.isfinite(est[k][m]),
                    phys["unstable"][k][m],
                )
            )
        rows[name] = {
            "val_mae": val_mae,
            "val_scores": val_scores,
            "splits": per_split,
            "free": free,
            "unstable_kept": est is estimate,
        }
        mean = {k: np.mean([h[k] for h in per_split]) for k in ("mae", "spearman_eps_mean", "top5_recall")}
        print(
            f"| {name} | {np.mean(val_mae):.4f} | {mean['mae']:.4f} | {mean['spearman_eps_mean']:.4f} | "
            f"{mean['top5_recall']:.3f} | {np.mean([h['tail_ratio'] for h in per_split]):.3f} | "
            f"{np.mean([h['coverage_2sigma'] for h in per_split]):.3f} | "
            f"{np.mean([h['coverage_2sigma_mean'] for h in per_split]):.3f} | "
            f"{np.round(np.mean([h['theta'] for h in per_split], 0), 3).tolist()} |",
            flush=True,
        )
    tag = "" if args.force_field == "sevennet" and not args.only_with else f"-{args.force_field}"
    tag += f"-only-with-{args.only_with}" if args.only_with else ""
    tag += f"-max{args.max_sites}" if args.max_sites is not None else ""
    tag += f"-stretch{args.charge_stretch:g}" if args.charge_stretch else ""
    tag += "-near-zero-stable" if args.near_zero_stable else ""
    tag += "-dft-charges" if args.dft_charges else ""
    (OUT / f"physics_stack-{LOSS}{tag}.json").write_text(json.dumps(rows, indent=1, default=float))
    best = min(rows, key=lambda n: np.mean(rows[n]["val_mae"]))
    print(f"\nbest on validation (out of fold): {best}")
    sigma_scale, sigma_metrics = fit_sigma_scale(errors[best])
    if args.write and rows[best]["free"]:
        est, free = candidates[best]
        theta = fitted(est, free, [(j, sets["val"][j]) for j in range(S)])  # every validation record
        keys = ("mae", "spearman_eps_mean", "top5_recall", "tail_ratio", "coverage_2sigma", "coverage_2sigma_mean")
        metrics = {k: round(float(np.mean([h[k] for h in rows[best]["splits"]])), 4) for k in keys}
        metrics["val_mae"] = round(float(np.mean(rows[best]["val_mae"])), 4)
        shipped.update(
            rule="gated",
            scale=scale,
            force_field=args.force_field,
            gate=[round(float(v), 6) for v in theta],
            keep_unstable=bool(rows[best]["unstable_kept"]),
            **({"max_sites": args.max_sites} if args.max_sites is not None else {}),
            chosen_on=f"validation splits (seeds 0-4): '{best}' has the lowest out-of-fold validation MAE of "
            f"{len(rows)} candidates (benchmarks/experiments/physics_stack.py); θ fitted on every validation record",
            command=shipped["command"].split("; python benchmarks/experiments/physics_stack.py")[0]
            + f"; python benchmarks/experiments/physics_stack.py --force-field {args.force_field}"
            + (f" --max-sites {args.max_sites}" if args.max_sites is not None else "")
            + " --write",
        )
        shipped["metrics_5_split_mean"]["gated"] = {**metrics, **sigma_metrics}
        shipped["sigma_scale"] = sigma_scale
        shipped["sigma_note"] = (
            "sigma_scale = (k_term, k_unstable): the physics model's sigma is the default's calibrated sigma times "
            "k_term for a crystal with the physics term, k_unstable for one left without it by unstable modes, and 1 "
            "for one without force constants (a cell over max_sites: the default's prediction and its sigma); each "
            "factor fitted to the coverage bands (goectp.uncertainty.fit_factor: +-2 sigma inside 90-97 %) on the "
            "out-of-fold validation predictions of the chosen candidate; coverage_*_mean_fitted: eps_mean within "
            "+-1/+-2 sigma on the five test splits pooled (physics_stack.py prints every group)"
        )
        shipped_path.write_text(json.dumps(shipped, indent=1) + "\n")
        print(f"{shipped_path}: rule gated, θ = {np.round(theta, 4).tolist()}, {metrics}")


if __name__ == "__main__":
    main()
