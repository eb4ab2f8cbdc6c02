"""``goectp predict``: the dielectric tensor of structure files (text or ``--json``)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from goectp.canonical import uses_canonical_cell
from goectp.cli.common import named, one_line, reason_code, shipped
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
        "--model", default="default", help=f"shipped model ({shipped()}) or checkpoint path (default: default)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--max-sites", type=int, default=MAX_SITES)
    p.add_argument("--no-frame", action="store_true", help="run the non-equivariant backbone alone (for teaching)")
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
    model = load_model(args.model)
    target = prediction_target(model)  # total, or electronic (ε∞: its eigenvalues give the refractive indices)
    canonical = uses_canonical_cell(model.config)
    rows = []
    for path in args.structures:
        try:  # read and checked in a worker with a memory and a time limit: no file can take this process down
            struct = pool.run(load_checked, str(path), args.max_sites, canonical, name=path)
            struct = load_structures(struct, max_sites=args.max_sites)[0]
            summary = None
            if args.no_frame:
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
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            if "error" not in r:
                print_row(r)
    return 1 if any("error" in r for r in rows) else 0


def print_row(r: dict) -> None:
    """One prediction as text: the tensor (± σ), eigenvalues, refractive indices, ε̄, anisotropy and OOD flags."""
    print(f"{r['file']}  ({r['formula']})  {TARGET_LABELS[r['target']]}")
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
