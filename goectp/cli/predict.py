"""``goectp predict``: the dielectric tensor of structure files (text or ``--json``)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from goectp.canonical import uses_canonical_cell
from goectp.cli.common import named, one_line, reason_code, shipped
from goectp.physics.config import PHYSICS_MODEL_NAME
from goectp.structure_checks import MAX_SITES

#: How ``goectp predict`` names the tensor a model predicts.
TARGET_LABELS = {
    "total": "static ε (electronic + ionic)",
    "electronic": "ε∞ (electronic, high-frequency)",
    "ionic": "ionic part of ε",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    p = sub.add_parser("predict", help="predict the dielectric tensor of CIF/POSCAR/extxyz files")
    p.add_argument("structures", nargs="+", help="structure files")
    p.add_argument(
        "--model",
        default="default",
        help=f"shipped model ({shipped()}), 'physics' (the default corrected by the physics term: seconds per"
        " structure) or a checkpoint path (default: default)",
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--max-sites", type=int, default=MAX_SITES)
    p.add_argument("--no-frame", action="store_true", help="run the non-equivariant backbone alone (for teaching)")
    p.add_argument(
        "--born-charges",
        action="store_true",
        help="also the physics term: predicted Born charges per atom and ε_ion = e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ with the physics"
        " model's SevenNet force constants (seconds per structure, cached)",
    )
    p.add_argument(
        "--modes", type=int, default=0, metavar="K", help="also the K phonon modes with the largest share of ε̄_ion"
    )
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict each file; exit 1 when any file failed (each failure is one line on stderr)."""
    from goectp.api import default_device, load_model, predict, predict_summary, prediction_target
    from goectp.isolation import load_checked, shared_pool
    from goectp.structures import StructureError, load_structures
    from goectp.tensor_stats import anisotropy, eigenvalues, mean_eigenvalue, refractive_indices

    device = default_device(args.device)  # a clear error for --device cuda without CUDA, before any work
    pool = shared_pool()
    pool.warm()  # the file worker starts while the model loads
    physics_model = None
    if args.model == PHYSICS_MODEL_NAME:  # the default corrected by the physics term (assets/physics/physics.json)
        from goectp.physics.model import PhysicsModel

        physics_model = PhysicsModel.load()
        if args.no_frame:
            raise ValueError("--no-frame runs one network's backbone: not with --model physics")
    model = physics_model.total if physics_model is not None else load_model(args.model)
    target = prediction_target(model)  # total, or electronic (ε∞: its eigenvalues give the refractive indices)
    canonical = uses_canonical_cell(model.config)
    rows = []
    for path in args.structures:
        try:  # read and checked in a worker with a memory and a time limit: no file can take this process down
            struct = pool.run(load_checked, str(path), args.max_sites, canonical, name=path)
            struct = load_structures(struct, max_sites=args.max_sites)[0]
            summary = None
            if physics_model is not None:
                summary = physics_model.predict_summary([struct])[0]
                mean, std = np.array([summary["eps_physics"]]), np.array([summary["tensor_std"]])
            elif args.no_frame:
                mean, std = predict(
                    struct, model, device=device, return_std=True, max_sites=args.max_sites, use_frame=False
                )
            else:  # ε̄ ± σ, α ± σ (calibrated σ when the ensemble ships a calibration) and OOD flags
                summary = predict_summary(struct, model, device=device, max_sites=args.max_sites)[0]
                mean, std = np.array([summary["tensor"]]), np.array([summary["tensor_std"]])
        except (StructureError, FileNotFoundError, ValueError, ArithmeticError, OSError) as exc:
            code = reason_code(exc)
            print(f"error: {named(exc, path)} [{code}]", file=sys.stderr)
            rows.append({"file": str(path), "error": one_line(exc), "code": code})
            continue
        eps, sd = mean[0], std[0]
        rows.append(
            {
                "file": str(path),
                "formula": struct.composition.reduced_formula,
                "tensor": eps.tolist(),
                "std": sd.tolist(),
                "eigenvalues": eigenvalues(eps).tolist(),
                "eps_mean": float(mean_eigenvalue(eps)),
                "anisotropy": float(anisotropy(eps)),
                "target": target,
            }
        )
        if target == "electronic":  # n_i = √λ_i of ε∞ (optical frequencies, below the gap)
            rows[-1]["refractive_indices"] = refractive_indices(eps).tolist()
        if summary is not None:
            rows[-1].update(
                {k: summary[k] for k in ("eps_mean_std", "anisotropy_std", "eigenvalues_std", "calibrated", "ood")}
            )
            if "parts" in summary:
                rows[-1]["parts"] = summary["parts"]
            if physics_model is not None:
                rows[-1].update(
                    model="physics",
                    eps_default=summary["tensor"],
                    eps_electronic=summary["eps_electronic"],
                    physics_used=summary["physics_used"],
                    physics_skipped=summary["physics_skipped"],
                    sigma_factor=summary["sigma_factor"],
                )
                if summary["physics"] is not None:
                    rows[-1]["physics"] = summary["physics"]
        if (args.born_charges or args.modes) and "physics" not in rows[-1]:
            try:
                from goectp.physics.predict import ionic_physics

                rows[-1]["physics"] = ionic_physics(struct).summary(modes=max(args.modes, 3))
            except (FileNotFoundError, ImportError, ValueError) as exc:
                code = reason_code(exc)
                print(f"error: {named(exc, path)} (physics term) [{code}]", file=sys.stderr)
                rows[-1]["physics_error"] = one_line(exc)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            if "error" not in r:
                print_row(r)
                if "physics" in r:
                    print_physics(r["physics"], born=args.born_charges, modes=args.modes)
    return 1 if any("error" in r or "physics_error" in r for r in rows) else 0


def print_row(r: dict) -> None:
    """One prediction as text: the tensor (± σ), eigenvalues, refractive indices, ε̄, anisotropy and OOD flags."""
    label = TARGET_LABELS[r["target"]] + (", default + physics term" if r.get("model") == "physics" else "")
    print(f"{r['file']}  ({r['formula']})  {label}")
    for i, line in enumerate(r["tensor"]):
        sd = "  ± " + " ".join(f"{v:6.3f}" for v in r["std"][i]) if np.any(r["std"]) else ""
        print("  [" + " ".join(f"{v:9.3f}" for v in line) + " ]" + sd)
    print("  eigenvalues: " + ", ".join(f"{v:.3f}" for v in r["eigenvalues"]))
    if "refractive_indices" in r:
        print("  refractive indices n = √λ(ε∞): " + ", ".join(f"{v:.3f}" for v in r["refractive_indices"]))
    if "eps_mean_std" in r:
        kind = "calibrated σ" if r["calibrated"] else "raw member std (no calibration)"
        print(
            f"  mean eigenvalue ε̄ = {r['eps_mean']:.3f} ± {r['eps_mean_std']:.3f}   anisotropy "
            f"λmax/λmin = {r['anisotropy']:.3f} ± {r['anisotropy_std']:.3f}   (± = {kind})"
        )
        if r["ood"] and r["ood"]["flag"]:
            print("  WARNING out of distribution: " + "; ".join(r["ood"]["reasons"]))
        elif r["ood"]:
            print("  in distribution (no OOD flag)")
    else:
        print(f"  mean eigenvalue ε̄ = {r['eps_mean']:.3f}   anisotropy λmax/λmin = {r['anisotropy']:.3f}")
    if r.get("model") == "physics":
        default_mean = float(np.trace(r["eps_default"]) / 3)
        factor = r.get("sigma_factor", 1.0)
        sigma = f"σ: the default's × {factor:.2f}" if factor != 1.0 else "σ: the default's"
        if r["physics_used"]:
            print(f"  physics term used: ε̄ {default_mean:.3f} (default) → {r['eps_mean']:.3f} ({sigma})")
        else:
            kept = "the default's prediction"
            if not np.isclose(r["eps_mean"], default_mean, rtol=1e-9):  # the gated rule's size factor
                kept += f" times the rule's size factor: ε̄ {default_mean:.3f} → {r['eps_mean']:.3f}"
            print(f"  physics term not used ({r['physics_skipped']}): {kept} ({sigma})")


def print_physics(p: dict, born: bool, modes: int) -> None:
    """The physics term as text: ε̄_ion, the Born charges per atom and the dominant modes."""
    print(
        f"  physics: ε̄_ion = {p['eps_ion_mean']:.3f} (e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ, {p['force_field']} force constants, "
        f"{p['unstable_modes']} unstable mode(s) left out)"
    )
    if born:
        spread = p["born_charges_std"]
        for i, (symbol, z) in enumerate(zip(p["species"], p["born_charges"])):
            sd = f" ± {np.mean(np.abs(spread[i])):.2f}" if spread is not None else ""
            diag = " ".join(f"{z[a][a]:6.2f}" for a in range(3))
            print(f"  Z*[{i}] {symbol:<3} diag {diag}  tr/3 {np.trace(z) / 3:6.2f}{sd}")
    for m in p["dominant_modes"][:modes]:
        print(
            f"  mode {m['index']:3d}: {m['frequency_thz']:7.2f} THz ({m['frequency_cm1']:7.1f} cm⁻¹), "
            f"{100 * m['share']:5.1f} % of ε̄_ion"
        )
