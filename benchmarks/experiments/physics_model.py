"""Does the physics term fix the high-κ tail? ε_ion from predicted Born charges and SevenNet-0 force constants,
combined with the default ensemble, chosen on the validation splits, paired on all five splits.

For split ``k`` every number comes from models that did not train on the record: the default's members of split
``k`` (the 5 families' split-``k`` members), the ``electronic`` (ε∞) member of split ``k`` and the Born-charge model
of split ``k`` (``benchmarks/experiments/born_charges.py``, trained on the dielectric split's training records).
Force constants are read from the cache ``physics_force_constants.py`` fills (canonical cells ≤ 40 atoms); a
record without them, or whose force constants have an unstable mode, keeps the default's prediction.

Candidates (``ε_phys`` = the physics ε_ion, ``ε∞`` = the electronic model, ``ε_d`` = the default):

- ``default``: ``ε_d``;
- ``replace``: ``ε∞ + s ε_phys`` (the ionic part from physics, ``s`` a global scale fitted on validation);
- ``blend``: ``ε_d + w (ε∞ + s ε_phys − ε_d)`` (``w`` chosen on validation);
- ``tail-blend``: ``blend`` only where ``ε̄(ε∞ + s ε_phys) > ε̄_d`` (physics can only raise a prediction);
- ``log-blend``: ``ε_d · (ε̄(ε∞ + s ε_phys) / ε̄_d)^w`` (the learned shape, the size moved geometrically).

    python benchmarks/experiments/physics_model.py            # needs the held-out caches (runs/calibration)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

OUT = Path("runs/physics")
#: the Born-charge members the experiments use (``split<k>.pt``, optionally more as ``split<k>-<name>.pt``)
BORN_RUN = Path("runs/born")
#: canonical cells per Born-charge forward pass in :func:`physics_tensors`
BATCH_CELLS = 64


def _born_model(seed: int):
    """Split ``seed``'s Born-charge member(s) in ``runs/born`` (``split<k>.pt``, any ``split<k>-*.pt``: the mean)."""
    from born_charges import load_split_model

    return load_split_model(BORN_RUN, seed)


def cache_key(model: str):
    """What :func:`goectp.physics.phonons.force_constant_key` reads of a force field (SevenNet checkpoint ``model``'s
    version), without loading it: for reading a force-constant cache."""
    import sevenn

    class Key:
        version = f"sevenn-{sevenn.__version__}-{model}"

    return Key


def element_means_per_split(seeds, n_records: int) -> list[dict[int, float]]:
    """Per split, the mean DFT tr(Z*)/3 per element over that split's *training* records of the Born-charge set (the
    graphs ``born_charges.py`` caches in ``runs/born/graphs.pt``)."""
    from born_charges import _graphs

    from goectp.data import random_split
    from goectp.data.paths import data_dir
    from goectp.training.born import element_charges

    data = _graphs(str(data_dir()))
    index = np.asarray(data["index"])
    out = []
    for seed in seeds:
        train = np.isin(index, random_split(n_records, seed)["train"])
        out.append(element_charges([g for g, keep in zip(data["graphs"], train) if keep]))
    return out


def physics_tensors(
    records,
    sets: dict[str, np.ndarray],
    cache: Path,
    seeds,
    model: str = "7net-0",
    stretch: float = 0.0,
    dft_charges: bool = False,
) -> dict:
    """``{"eps": [S, N, 3, 3] (NaN where missing), "unstable": [S, N], "unstable_beyond_noise": [S, N] (those below
    −SOFT_MODE_THZ), "lowest": [S, N] (THz, the softest mode in the sum), "have": [S, N] bool, "sites": [N] (atoms
    in the canonical cell; 0 for a record in no val/test set)}`` for the val and test records of each split (force
    constants of the SevenNet checkpoint ``model``, read from ``cache``). ``stretch`` β: an experiment on the charges'
    shrinkage, each predicted Z* moved away from its element's training mean, ``Z* + β (Z* − m_e I)``.
    ``dft_charges``: an oracle, DFT's charges (sum rule enforced) wherever the Born file has them and the rule holds,
    the predicted ones elsewhere — how far perfect charges would take the physics term."""
    from goectp.canonical import canonical_cell
    from goectp.physics.ionic import SOFT_MODE_THZ, ionic_modes
    from goectp.physics.predict import born_charge_input, born_charges_of_cells, point_group_average, point_group_of
    from goectp.physics.standard_cell import standard_force_constants

    key = cache_key(model)
    n = len(records)
    eps = np.full((len(seeds), n, 3, 3), np.nan)
    unstable = np.zeros((len(seeds), n), int)
    beyond_noise = np.zeros((len(seeds), n), int)
    lowest = np.full((len(seeds), n), np.nan)
    sites = np.zeros(n, int)
    cells: dict[int, tuple] = {}
    for i, rec in enumerate(records):
        if not (sets["val"][:, i].any() or sets["test"][:, i].any()):
            continue
        cell = canonical_cell(rec.structure)
        sites[i] = len(cell)
        fc = standard_force_constants(cell, key, cache, compute=False)  # as ionic_physics reads them
        if fc is not None:
            cells[i] = (cell, fc)
    print(f"force constants found for {len(cells)} of {n} records", flush=True)
    born = [_born_model(seed) for seed in seeds]
    means = element_means_per_split(seeds, n) if stretch else None
    oracle = dft_charges_of_cells(records, {i: cell for i, (cell, _) in cells.items()}) if dft_charges else {}
    k_neighbors = {model.config.k_neighbors for model in born}
    assert len(k_neighbors) == 1, f"the split models read different graphs (k = {k_neighbors})"
    inputs = {i: born_charge_input(cell, *k_neighbors) for i, (cell, _) in cells.items()}  # one graph per cell
    groups = {i: point_group_of(cell) for i, (cell, _) in cells.items()}  # as ionic_physics: the point-group average
    for k in range(len(seeds)):
        held = [i for i in cells if sets["val"][k, i] or sets["test"][k, i]]
        for start in range(0, len(held), BATCH_CELLS):  # many cells per pass: the same charges, 4.3× faster
            chunk = held[start : start + BATCH_CELLS]
            for i, z in zip(chunk, born_charges_of_cells([inputs[i] for i in chunk], born[k])):
                cell, fc = cells[i]
                z = oracle.get(i, z)
                if stretch:
                    m = np.array([means[k].get(site.specie.Z, 0.0) for site in cell])
                    z = z + stretch * (z - m[:, None, None] * np.eye(3))
                modes = ionic_modes(z, fc.force_constants, fc.volume, fc.masses)
                eps[k, i], unstable[k, i] = point_group_average(modes.tensor, groups[i]), modes.num_unstable
                lowest[k, i] = modes.softest_thz
                beyond_noise[k, i] = int((modes.frequency_thz < -SOFT_MODE_THZ).sum())
    have = np.isfinite(eps).all(axis=(2, 3))
    return {
        "eps": eps,
        "unstable": unstable,
        "unstable_beyond_noise": beyond_noise,
        "lowest": lowest,
        "have": have,
        "sites": sites,
    }


def dft_charges_of_cells(records, cells: dict[int, object]) -> dict[int, np.ndarray]:
    """``{record index: DFT Born charges [N, 3, 3] on the sites of cells[i]}`` where the Born file holds charges that
    obey the sum rule and its structure maps one to one onto the cell (the rule then enforced exactly)."""
    from goectp.data.paths import data_dir
    from goectp.physics.born_data import read_born_charges
    from goectp.physics.ionic import enforce_acoustic_sum_rule

    born = read_born_charges(data_dir() / "mp_born_charges.json.gz")
    out = {}
    for i, cell in cells.items():
        b = born.get(records[i].id)
        if b is None or not b.sum_rule_holds or len(b.structure) != len(cell):  # as measured: primitive files only
            continue
        z = b.charges_on(cell)
        if z is not None:
            out[i] = enforce_acoustic_sum_rule(z)
    print(f"DFT charges (oracle) for {len(out)} of {len(cells)} cells", flush=True)
    return out


FORCE_FIELD_MODELS = {"sevennet": "7net-0", "sevennet-l3i5": "7net-l3i5"}  # force_field name → SevenNet checkpoint


def cached_physics_tensors(
    records,
    sets: dict[str, np.ndarray],
    force_field: str = "sevennet",
    stretch: float = 0.0,
    dft_charges: bool = False,
) -> dict:
    """:func:`physics_tensors` of ``force_field``'s cache (``runs/phonons/cache-<force_field>``), kept in
    ``runs/physics``; the file's name holds the number of cached force constants and a hash of the Born-charge
    checkpoints ``runs/born/split<k>.pt``, so a growing cache or a retrained Born model computes it anew."""
    from goectp.data.splits import SPLIT_SEEDS

    cache = Path("runs/phonons") / f"cache-{force_field}"
    n_files = len(list(cache.glob("*.npz")))
    from born_charges import split_members

    born = hashlib.sha256(b"".join(f.read_bytes() for k in SPLIT_SEEDS for f in split_members(BORN_RUN, k)))
    # v4: with "unstable_beyond_noise" (v3: force constants of the standard cell, as a prediction reads them)
    tag = (f"-stretch{stretch:g}" if stretch else "") + ("-dft-charges" if dft_charges else "")
    path = OUT / f"physics_details-v4-{force_field}-{n_files}-born{born.hexdigest()[:8]}{tag}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = physics_tensors(records, sets, cache, SPLIT_SEEDS, FORCE_FIELD_MODELS[force_field], stretch, dft_charges)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


def drop_large_cells(phys: dict, max_sites: int) -> int:
    """Remove the physics term (in place) of the records whose canonical cell has more than ``max_sites`` atoms, as
    the shipped model does (those keep the learned tensor); returns how many were dropped."""
    large = phys["have"].any(axis=0) & (phys["sites"] > max_sites)
    phys["eps"][:, large] = np.nan
    phys["have"][:, large] = False
    return int(large.sum())


def physics_scale(records, sets: dict[str, np.ndarray], phys: dict) -> float:
    """``s``: the median DFT/physics ionic ε̄ over the validation entries (every split) with a stable physics term."""
    from goectp.tensor_stats import mean_eigenvalue

    dft = mean_eigenvalue(np.stack([r.target("ionic") for r in records]))
    physics = mean_eigenvalue(phys["eps"])
    k, i = (sets["val"] & np.isfinite(physics) & (phys["unstable"] == 0)).nonzero()
    return float(np.median(dft[i] / np.maximum(physics[k, i], 1e-6)))


def combine(name: str, default, electronic, phys, usable, s: float, w: float) -> np.ndarray:
    """The candidate ``name`` for one split ``[N, 3, 3]`` (:func:`goectp.physics.combine.combine_physics`)."""
    from goectp.physics.combine import combine_physics

    return combine_physics(name, default, electronic, phys, usable, s, w)


def tail_ratio(pred: np.ndarray, true: np.ndarray, lo: float = 30.0) -> float:
    """Median predicted/true ε̄ over the records with true ε̄ ≥ ``lo``."""
    t, p = np.trace(true, axis1=1, axis2=2) / 3, np.trace(pred, axis1=1, axis2=2) / 3
    sel = t >= lo
    return float(np.median(p[sel] / t[sel])) if sel.any() else float("nan")


def main() -> None:
    from scipy.stats import spearmanr

    from goectp.data.dielectric import read_dielectric_json
    from goectp.data.paths import data_dir
    from goectp.data.splits import SPLIT_SEEDS, split_masks
    from goectp.evaluation.metrics import headline_metrics
    from goectp.registry import resolve_model_path
    from goectp.uncertainty import Calibration, heldout_predictions, split_means, split_members

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--force-field", default="sevennet", choices=sorted(FORCE_FIELD_MODELS))
    args = p.parse_args()
    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    held_d, held_e = heldout_predictions("default"), heldout_predictions("electronic")
    assert [r.id for r in records] == list(held_d["ids"]) == list(held_e["ids"])
    n = len(records)
    sets = split_masks(n, SPLIT_SEEDS)
    default = split_means(held_d, sets["test"])  # [S, N, 3, 3]
    own = split_members(held_d, sets["test"])
    calibration = Calibration.load(resolve_model_path("default"))
    sigma = np.stack(
        [calibration.sigma("tensor", held_d["members"][o].std(axis=0), default[k], len(o)) for k, o in enumerate(own)]
    )
    electronic = split_means(held_e, sets["test"])
    true = held_d["true"]
    true_ion = np.stack([r.target("ionic") for r in records])
    phys = cached_physics_tensors(records, sets, args.force_field)
    usable = phys["have"] & (phys["unstable"] == 0)
    ion_mean = np.trace(true_ion, axis1=1, axis2=2) / 3
    # ranking of the ionic part alone, physics (predicted Z*) vs the default's ionic part (ε_d − ε∞)
    rows = []
    for k in range(len(SPLIT_SEEDS)):
        sel = sets["test"][k] & usable[k]
        pe = np.trace(phys["eps"][k][sel], axis1=1, axis2=2) / 3
        de = np.trace(default[k][sel] - electronic[k][sel], axis1=1, axis2=2) / 3
        rows.append((sel.sum(), spearmanr(pe, ion_mean[sel]).statistic, spearmanr(de, ion_mean[sel]).statistic))
    print("ionic ε̄ Spearman on test records with usable force constants (predicted Z*): physics vs default")
    for k, (m, a, b) in enumerate(rows):
        print(f"  split {k}: n {m}, physics {a:.3f}, default ionic part {b:.3f}")
    # scale s and weight w on the validation records (pooled over splits)
    s = physics_scale(records, sets, phys)
    results = {}
    for name in ("default", "replace", "blend", "tail-blend", "log-blend"):
        best = None
        for w in [1.0] if name in ("default", "replace") else np.linspace(0.1, 1.0, 10):
            val = [
                combine(name, default[k], electronic[k], phys["eps"][k], usable[k], s, w)[sets["val"][k]]
                for k in range(len(SPLIT_SEEDS))
            ]
            mae = np.mean([np.abs(v - true[sets["val"][k]]).mean() for k, v in enumerate(val)])
            if best is None or mae < best[0]:
                best = (mae, w)
        w = best[1]
        per_split = []
        for k in range(len(SPLIT_SEEDS)):
            pred = combine(name, default[k], electronic[k], phys["eps"][k], usable[k], s, w)
            h = headline_metrics(pred[sets["test"][k]], true[sets["test"][k]])
            h["tail_ratio"] = tail_ratio(pred[sets["test"][k]], true[sets["test"][k]])
            h["val_mae"] = float(np.abs(pred[sets["val"][k]] - true[sets["val"][k]]).mean())
            t = sets["test"][k]
            h["coverage_2sigma"] = float((np.abs(pred[t] - true[t]) <= 2 * sigma[k][t]).mean())
            per_split.append(h)
        results[name] = {"w": w, "s": s, "splits": per_split}
    keys = [
        ("val_mae", "val MAE"),
        ("mae", "test MAE"),
        ("spearman_eps_mean", "ε̄ Spearman"),
        ("top5_recall", "top-5 % recall"),
        ("tail_ratio", "median pred/true ε̄ (ε̄ ≥ 30)"),
    ]
    bins = [k for k in results["default"]["splits"][0] if k.startswith("bin ")]
    print(f"\nscale s = {s:.3f} (median DFT/physics ionic ε̄ on validation); means over the 5 test splits\n")
    print("| candidate | w | " + " | ".join(label for _, label in keys) + " | MAE per ε̄ bin " + " / ".join(bins) + " |")
    print("|---" * (len(keys) + 3) + "|")
    for name, r in results.items():
        vals = [np.mean([sp[key] for sp in r["splits"]]) for key, _ in keys]
        per_bin = " / ".join(f"{np.mean([sp[b] for sp in r['splits']]):.2f}" for b in bins)
        print(f"| {name} | {r['w']:.1f} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {per_bin} |")
    (OUT / "physics_model.json").write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
