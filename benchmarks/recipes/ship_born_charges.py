"""Ship the Born-charge ensemble: the five split models of ``benchmarks/experiments/born_charges.py`` → checkpoints
in ``assets/physics/born-charges/`` with their weight matrices stored as float16 (:func:`goectp.release.half.
store_float16`) and a model card holding their measured metrics (check the stored files with ``born_charges.py
--evaluate-shipped``).

    python benchmarks/experiments/born_charges.py --splits 0 1 2 3 4      # trains (runs/born/split<k>.pt)
    python benchmarks/recipes/ship_born_charges.py                          # this script
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "born"


def main() -> None:
    import torch

    from goectp.checkpoint import read_checkpoint, save_checkpoint
    from goectp.models.born import BornChargeModel
    from goectp.models.goectp import GoeCTPConfig
    from goectp.registry import assets_dir
    from goectp.release.half import store_float16

    out = assets_dir() / "physics" / "born-charges"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in sorted(RUNS.glob("split*.pt")):
        seed = int(path.stem[5:])
        ckpt = read_checkpoint(path)
        model = BornChargeModel(GoeCTPConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["state_dict"])
        metrics = json.loads((RUNS / f"split{seed}.json").read_text())
        save_checkpoint(
            out / f"split{seed}.pt",
            model.to(torch.float32),
            split_seed=seed,
            train_config=metrics["train_config"],
            val_mae=metrics["val"]["mae"],
            test_mae=metrics["test"]["mae"],
            test_baseline_mae=metrics["test"]["baseline_mae"],
        )
        rows.append(metrics)
    store_float16([out])
    (out / "MODEL_CARD.md").write_text(card(rows))
    print(f"wrote {len(rows)} members (float16 weight matrices) and MODEL_CARD.md to {out}")


def card(rows: list[dict]) -> str:
    lines = [
        "# born-charges: Born effective charges per atom (goectp.models.born.BornChargeModel)",
        "",
        "What it predicts: the DFPT Born effective charge tensor Z* (e, 3x3, not symmetric) of every atom, exactly",
        "O(3)-equivariant (F z Fᵀ on GoeCTP's frames, averaged over the frames Q·F), averaged over the space group",
        "(symmetric atoms get related charges) and with the acoustic sum rule Σ_i Z*_i = 0 exact. Used by",
        "`goectp.physics.predict.ionic_physics` for the physics term ε_ion = e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ.",
        "",
        "Data: `mp_born_charges.json.gz` (DFPT, mace-field frames of the Materials Project), records whose charges",
        "obey the sum rule (|Σ Z*| < 0.1 e; 105 of 2,125 do not) mapped onto their canonical primitive cells. Splits:",
        "the dielectric set's random 80/10/10 splits (seeds 0-4, `goectp.data.random_split` over",
        "`mp_dielectric_open.json.gz`), so a record in a test split was in no training set of that split.",
        "Architecture: GoeCTP backbone, hidden 64, 2 message layers, a per-atom 9-output head, a learned isotropic",
        "charge per element (initialised at the training mean of tr Z*/3). Huber loss, AdamW, cosine decay, best",
        "validation epoch kept; float32 training. Stored with its weight matrices (≥ 1,024 elements) in float16",
        "(`goectp.release.half.store_float16`: 1.6 → 0.8 MB); compute stays float64 in the physics term. The stored",
        "members give the table's test MAE to four decimals (`python benchmarks/experiments/born_charges.py",
        "--evaluate-shipped`).",
        "",
        "Command: `python benchmarks/experiments/born_charges.py --splits <k> --epochs <E>` then",
        "`python benchmarks/recipes/ship_born_charges.py`; the table: `python benchmarks/experiments/born_charges.py"
        " --report`.",
        "",
        "| split | epochs | val MAE (e) | test MAE (e) | per-element-mean baseline, test (e) | test atoms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['split']} | {r['train_config']['epochs']} | {r['val']['mae']:.4f} | {t['mae']:.4f} | "
            f"{t['baseline_mae']:.4f} | {t['atoms']} |"
        )
    mae = np.mean([r["test"]["mae"] for r in rows])
    base = np.mean([r["test"]["baseline_mae"] for r in rows])
    lines += [
        f"| mean | | {np.mean([r['val']['mae'] for r in rows]):.4f} | {mae:.4f} | {base:.4f} | |",
        "",
        "MAE = mean |Δ| over the nine components of every atom of the split's test records (canonical cells).",
        "The baseline predicts each atom the training mean of tr(Z*)/3 of its element times I, sum rule enforced.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
