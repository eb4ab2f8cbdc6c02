"""Born effective charges predicted by :class:`goectp.models.born.BornChargeModel`: five splits, MAE against a
per-element-mean baseline, and the predictions of every split's test (and validation) records for the physics term.

    python benchmarks/experiments/born_charges.py --splits 0 1 2 3 4 --epochs 60     # trains, ~N min per split
    python benchmarks/experiments/born_charges.py --report                              # the table
    python benchmarks/experiments/born_charges.py --evaluate-shipped                    # the shipped files' MAE
    python benchmarks/experiments/born_charges.py --sum-rule-tolerance 1 --out runs/born-tol1 --epochs 120
    python benchmarks/experiments/born_charges.py --sum-rule-tolerance 1 --evaluate-shipped --out runs/born-shipped
    python benchmarks/experiments/born_charges.py --compare runs/born-shipped runs/born-tol1 --sum-rule-tolerance 1
    python benchmarks/experiments/born_charges.py --epochs 240 --seed-offset 1 --out runs/born-e240
    python benchmarks/experiments/born_charges.py --init-backbone pretrained-bulk-modulus-layers2 --out runs/born-ft
    python benchmarks/experiments/born_charges.py --epochs 120 --ionic-weight 0.05 --seed-offset 6 --out runs/born-ion
    python benchmarks/experiments/born_charges.py --ionic-compare runs/born-m0 runs/born-ion --splits 0 1

``--ionic-compare A B …`` measures folders of members on each split's validation records with force constants: the
charge MAE, the mean relative ε_ion error at fixed force constants, and on the high-κ ones (DFT ε̄ ≥ 30) the median
ε̄_ion with predicted over DFT charges (what the tail ratio needs near 1). ``--ionic-weight λ`` adds λ × the
relative error of ε_ion at fixed force constants to the loss (:func:`goectp.training.born.ionic_operator`), on the
records whose canonical cell has SevenNet-l3i5 force constants in ``runs/phonons/cache-sevennet-l3i5``
(``physics_force_constants.py`` fills it; no labels: the force field sees the structure only) and no unstable mode;
the operators are kept in ``runs/born/ionic-ops-<force field>.npz``.

``--sum-rule-tolerance`` (default 0.1 e, as the shipped charges were trained) also keeps the records whose charges
break the acoustic sum rule by less, with the rule enforced (:func:`goectp.training.born.born_graphs`).
``--compare A B`` pairs two runs' predictions (or the shipped members' from ``--evaluate-shipped --out``) on the
records both hold: MAE per split, on the high-κ records (DFT ε̄ ≥ 30) and the shrinkage of large charges.

Writes ``runs/born/split<k>.pt`` (checkpoint), ``runs/born/split<k>.json`` (metrics) and
``runs/born/pred-split<k>.npz`` (``ids`` and the predicted charges of the val/test records, graph order mapped back
to the records' site order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

OUT = Path("runs/born")
GRAPHS = Path("runs/born/graphs.pt")
#: the tolerance (e) the shipped charges were trained with (:data:`goectp.physics.born_data.SUM_RULE_TOLERANCE`)
SHIPPED_TOLERANCE = 0.1


def _graphs(data_dir: str, sum_rule_tolerance: float = SHIPPED_TOLERANCE):
    import torch

    from goectp.checkpoint import atomic_save, load_cache
    from goectp.training.born import born_graphs

    path = (
        GRAPHS if sum_rule_tolerance == SHIPPED_TOLERANCE else GRAPHS.with_name(f"graphs-tol{sum_rule_tolerance:g}.pt")
    )
    if path.is_file():
        return load_cache(path)
    bg = born_graphs(data_dir, progress=True, sum_rule_tolerance=sum_rule_tolerance)
    data = {"ids": bg.ids, "graphs": bg.graphs, "index": torch.from_numpy(bg.dielectric_index), "skipped": bg.skipped}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(data, path)
    return data


def _ionic_operators(data: dict, data_dir: str, force_field: str) -> list[np.ndarray | None]:
    """Per Born graph of ``data``, its :func:`goectp.training.born.ionic_operator` in graph-node order from the cached
    force constants of its canonical cell (``None``: none cached, an unstable mode or cells that do not map)."""
    from physics_model import FORCE_FIELD_MODELS, cache_key

    from goectp.canonical import canonical_cell
    from goectp.physics.born_data import read_born_charges
    from goectp.physics.standard_cell import standard_force_constants
    from goectp.training.born import ionic_operator, node_mapping

    path = GRAPHS.with_name(f"ionic-ops-{force_field}.npz")
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return [z[i] if i in z.files else None for i in data["ids"]]
    key, cache = cache_key(FORCE_FIELD_MODELS[force_field]), Path("runs/phonons") / f"cache-{force_field}"
    born = read_born_charges(Path(data_dir) / "mp_born_charges.json.gz")
    out: dict[str, np.ndarray] = {}
    for n, (i, graph) in enumerate(zip(data["ids"], data["graphs"])):
        cell = canonical_cell(born[i].structure)
        fc = standard_force_constants(cell, key, cache, compute=False) if len(cell) <= 40 else None
        op = None if fc is None else ionic_operator(fc.force_constants, fc.volume, fc.masses)
        weights = None if op is None else node_mapping(graph, cell)
        if weights is not None and weights.shape[0] == weights.shape[1] and np.allclose(weights.sum(axis=0), 1):
            out[i] = np.einsum("ij,jkc->ikc", weights, op)  # cell order → graph-node order (a permutation)
        if n % 200 == 0:
            print(f"ionic operators: {n}/{len(data['ids'])} graphs, {len(out)} with one", flush=True)
    np.savez_compressed(path, **out)
    return [out.get(i) for i in data["ids"]]


def _metrics(pred: list[np.ndarray], graphs: list, charges: dict[int, float]) -> dict:
    from goectp.training.born import baseline_charges

    err = np.concatenate([np.abs(p - g.born.numpy()).mean(axis=(1, 2)) for p, g in zip(pred, graphs)])
    base = np.concatenate(
        [np.abs(baseline_charges(g, charges).numpy() - g.born.numpy()).mean(axis=(1, 2)) for g in graphs]
    )
    z = np.concatenate([g.z.numpy() for g in graphs])
    per_element = {int(e): (float(err[z == e].mean()), float(base[z == e].mean()), int((z == e).sum())) for e in set(z)}
    return {"mae": float(err.mean()), "baseline_mae": float(base.mean()), "atoms": len(err), "per_element": per_element}


def run(args: argparse.Namespace) -> None:
    import torch

    from goectp.checkpoint import save_checkpoint
    from goectp.data import random_split
    from goectp.registry import resolve_model_path
    from goectp.training.born import BornTrainConfig, predict_born, train_born_model

    torch.set_num_threads(args.threads)
    data = _graphs(args.data_dir, args.sum_rule_tolerance)
    index = np.asarray(data["index"])
    n_dielectric = args.n_dielectric
    if args.ionic_weight:
        from goectp.training.born import with_ionic_targets

        count = with_ionic_targets(data["graphs"], _ionic_operators(data, args.data_dir, args.force_field))
        print(f"ε_ion loss on {count} of {len(data['graphs'])} graphs (λ = {args.ionic_weight:g})", flush=True)
    for seed in args.splits:
        split = random_split(n_dielectric, seed)
        part = {name: np.isin(index, split[name]) for name in ("train", "val", "test")}
        graphs = {name: [g for g, m in zip(data["graphs"], mask) if m] for name, mask in part.items()}
        print(f"split {seed}: " + ", ".join(f"{k} {len(v)}" for k, v in graphs.items()), flush=True)
        cfg = BornTrainConfig(
            epochs=args.epochs,
            hidden=args.hidden,
            num_layers=args.layers,
            seed=seed + 100 * args.seed_offset,
            huber_delta=args.huber_delta,
            lr=args.lr,
            ionic_weight=args.ionic_weight,
            init_backbone=str(resolve_model_path(args.init_backbone) / f"split{seed}.pt")
            if args.init_backbone
            else None,
        )
        model, info = train_born_model(graphs["train"], graphs["val"], cfg, log=print)
        args.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(args.out / f"split{seed}.pt", model, split_seed=seed, train_config=vars(cfg))
        result = {
            "split": seed,
            "train_config": vars(cfg),
            "sum_rule_tolerance": args.sum_rule_tolerance,
            "best_val_mae": info["best_val_mae"],
            "best_val_ionic": info["best_val_ionic"],
        }
        preds = {}
        for name in ("val", "test"):
            pred = predict_born(model, graphs[name])
            result[name] = _metrics(pred, graphs[name], info["charges"])
            ids = [i for i, m in zip(data["ids"], part[name]) if m]
            preds.update({f"{name}:{i}": p for i, p in zip(ids, pred)})
        result["seconds_per_epoch"] = float(np.median([h["s"] for h in info["history"]]))
        (args.out / f"split{seed}.json").write_text(json.dumps(result, indent=1))
        np.savez_compressed(args.out / f"pred-split{seed}.npz", **preds)
        print(
            f"split {seed}: test MAE {result['test']['mae']:.4f}"
            f" (per-element mean {result['test']['baseline_mae']:.4f})"
        )


def report(args: argparse.Namespace) -> None:
    results = [json.loads(p.read_text()) for p in sorted(args.out.glob("split*.json"))]
    if not results:
        raise SystemExit(f"no results under {args.out}: run the training first")
    print("| split | train epochs | val MAE (e) | test MAE (e) | per-element-mean test MAE (e) | test atoms |")
    print("|---|---|---|---|---|---|")
    for r in results:
        t = r["test"]
        print(
            f"| {r['split']} | {r['train_config']['epochs']} | {r['val']['mae']:.4f} | {t['mae']:.4f} | "
            f"{t['baseline_mae']:.4f} | {t['atoms']} |"
        )
    mae = [r["test"]["mae"] for r in results]
    base = [r["test"]["baseline_mae"] for r in results]
    print(
        f"| mean | | {np.mean([r['val']['mae'] for r in results]):.4f} | {np.mean(mae):.4f} | {np.mean(base):.4f} | |"
    )
    large_charges(args)
    per_element_table([r["test"] for r in results])


def per_element_table(metrics: list[dict], rows: int = 15) -> None:
    """The test MAE of the ``rows`` most common elements, pooled over the splits' :func:`_metrics`, next to the
    per-element-mean baseline."""
    from pymatgen.core.periodic_table import Element

    pooled: dict[int, list] = {}
    for m in metrics:
        for z, (e, b, n) in m["per_element"].items():
            pooled.setdefault(int(z), []).append((e * n, b * n, n))
    print("\n| element | test atoms (all splits) | model MAE | per-element-mean MAE |\n|---|---|---|---|")
    for z, vals in sorted(pooled.items(), key=lambda kv: -sum(x[2] for x in kv[1]))[:rows]:
        n = sum(v[2] for v in vals)
        print(
            f"| {Element.from_Z(z).symbol} | {n} | {sum(v[0] for v in vals) / n:.3f} |"
            f" {sum(v[1] for v in vals) / n:.3f} |"
        )


def large_charges(args: argparse.Namespace, threshold: float = 5.0) -> None:
    """Shrinkage at the anomalous end: the median predicted/DFT tr(Z*)/3 over the test atoms with |tr(Z*)/3| ≥
    ``threshold`` (what ε_ion squares), from ``pred-split<k>.npz``."""
    data = _graphs(args.data_dir)
    graphs = dict(zip(data["ids"], data["graphs"]))
    pred, dft = [], []
    for path in sorted(args.out.glob("pred-split*.npz")):
        with np.load(path) as z:
            for key in (k for k in z.files if k.startswith("test:")):
                pred.append(np.trace(z[key], axis1=1, axis2=2) / 3)
                dft.append(np.trace(graphs[key[5:]].born.numpy(), axis1=1, axis2=2) / 3)
    pred, dft = np.concatenate(pred), np.concatenate(dft)
    large = np.abs(dft) >= threshold
    print(
        f"\ntest atoms with |tr Z*/3| ≥ {threshold:g}: {int(large.sum())}, median predicted/DFT tr Z*/3 "
        f"{np.median(pred[large] / dft[large]):.3f}"
    )


def ionic_compare(args: argparse.Namespace) -> None:
    """The members of each ``--ionic-compare`` folder on split k's validation records (see the module docstring)."""
    import torch
    from torch_geometric.loader import DataLoader

    from goectp.data import random_split
    from goectp.data.dielectric import read_dielectric_json
    from goectp.training.born import born_mae, ionic_tensor, ionic_val_error, with_ionic_targets

    torch.set_num_threads(args.threads)
    data = _graphs(args.data_dir)
    with_ionic_targets(data["graphs"], _ionic_operators(data, args.data_dir, args.force_field))
    records = read_dielectric_json(Path(args.data_dir) / "mp_dielectric_open.json.gz")
    eps = {r.id: float(np.trace(r.target("total"))) / 3 for r in records}
    index = np.asarray(data["index"])
    print("| split | members | val charge MAE (e) | val ε_ion error | val high-κ records | their ε̄_ion pred/DFT Z* |")
    print("|---|---|---|---|---|---|")
    for seed in args.splits:
        held = np.isin(index, random_split(args.n_dielectric, seed)["val"])
        val = [g for g, m in zip(data["graphs"], held) if m]
        tail = [g for i, g, m in zip(data["ids"], data["graphs"], held) if m and bool(g.has_ionic) and eps[i] >= 30]
        for folder in args.ionic_compare:
            model = load_split_model(folder, seed)
            loader = DataLoader(val, batch_size=64)
            batch = next(iter(DataLoader(tail, batch_size=len(tail))))
            with torch.no_grad():
                pred = ionic_tensor(model(batch).double(), batch.ionic_op.double(), batch.batch, batch.num_graphs)
            ratio = np.trace(pred.numpy(), axis1=1, axis2=2) / np.trace(
                batch.ionic_eps.double().numpy(), axis1=1, axis2=2
            )
            print(
                f"| {seed} | `{folder}` | {born_mae(model, loader):.4f} | {ionic_val_error(model, loader):.4f} | "
                f"{len(tail)} | {np.median(ratio):.3f} |"
            )


def split_members(folder: Path, seed: int) -> list[Path]:
    """The Born-charge checkpoints of split ``seed`` in ``folder``: ``split<k>.pt`` and any ``split<k>-<name>.pt``
    (more members of that split, e.g. another training seed), sorted."""
    files = sorted(p for p in Path(folder).glob(f"split{seed}*.pt") if p.stem.split("-")[0] == f"split{seed}")
    if not files:
        raise FileNotFoundError(f"no split{seed}.pt or split{seed}-*.pt in {folder}")
    return files


def load_split_model(folder: Path, seed: int):
    """Split ``seed``'s Born-charge model of ``folder`` in float64: one checkpoint, or the mean of its members
    (:class:`goectp.models.born.BornEnsemble`; the sum rule and the equivariance stay exact)."""
    from goectp.models.born import BornEnsemble
    from goectp.registry import load_model

    files = split_members(folder, seed)
    if len(files) == 1:
        return load_model(files[0]).double().eval()
    return BornEnsemble([load_model(f) for f in files], [f.stem for f in files]).double().eval()


def evaluate_shipped(args: argparse.Namespace) -> None:
    """The members of ``--members`` (default: the shipped ``assets/physics/born-charges``, as stored): split ``k``'s
    member(s) on split ``k``'s test atoms, next to the per-element-mean baseline of that split's training atoms
    (:func:`_metrics`)."""
    import torch

    from goectp.data import random_split
    from goectp.registry import assets_dir
    from goectp.training.born import element_charges, predict_born

    torch.set_num_threads(args.threads)
    data = _graphs(args.data_dir, args.sum_rule_tolerance)
    index = np.asarray(data["index"])
    folder = args.members or assets_dir() / "physics" / "born-charges"
    results = []
    for seed in args.splits:
        split = random_split(args.n_dielectric, seed)
        part = {name: np.isin(index, split[name]) for name in ("train", "val", "test")}
        train, val, test = ([g for g, m in zip(data["graphs"], part[name]) if m] for name in ("train", "val", "test"))
        model = load_split_model(folder, seed)
        pred = {"val": predict_born(model, val), "test": predict_born(model, test)}
        results.append(_metrics(pred["test"], test, element_charges(train)))
        if args.out != OUT:  # the members' predictions, for --compare
            args.out.mkdir(parents=True, exist_ok=True)
            keyed = {
                f"{name}:{i}": p
                for name in ("val", "test")
                for i, p in zip([i for i, m in zip(data["ids"], part[name]) if m], pred[name])
            }
            np.savez_compressed(args.out / f"pred-split{seed}.npz", **keyed)
        print(
            f"split {seed}: {len(split_members(folder, seed))} member(s) of {folder}, test MAE "
            f"{results[-1]['mae']:.4f} e over {results[-1]['atoms']} atoms "
            f"(per-element mean {results[-1]['baseline_mae']:.4f})"
        )
    print(f"mean {np.mean([r['mae'] for r in results]):.4f} e")
    per_element_table(results)


def compare(args: argparse.Namespace) -> None:
    """Two runs' predicted charges on the records both predicted, split by split (see the module docstring)."""
    from goectp.data.dielectric import read_dielectric_json
    from goectp.data.paths import data_dir

    first, second = args.compare
    data = _graphs(args.data_dir, args.sum_rule_tolerance)
    target = {i: g.born.numpy() for i, g in zip(data["ids"], data["graphs"])}
    eps = {
        r.id: float(np.trace(r.target("total"))) / 3
        for r in read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    }
    print(f"| split | set | records | {first} MAE (e) | {second} MAE (e) | high-κ records | their MAE: A / B |")
    print("|---|---|---|---|---|---|---|")
    large = {first: [], second: []}
    big_dft = []
    for seed in args.splits:
        a, b = (np.load(Path(d) / f"pred-split{seed}.npz") for d in (first, second))
        for name in ("val", "test"):
            keys = sorted(k for k in set(a.files) & set(b.files) if k.startswith(f"{name}:"))
            err = {
                d: [np.abs(z[k] - target[k.split(":", 1)[1]]).mean() for k in keys]
                for d, z in ((first, a), (second, b))
            }
            tail = np.array([eps[k.split(":", 1)[1]] >= 30 for k in keys])
            print(
                f"| {seed} | {name} | {len(keys)} | {np.mean(err[first]):.4f} | {np.mean(err[second]):.4f} | "
                f"{int(tail.sum())} | {np.mean(np.array(err[first])[tail]):.4f} / "
                f"{np.mean(np.array(err[second])[tail]):.4f} |"
            )
            if name == "test":
                for k in keys:
                    dft = np.trace(target[k.split(":", 1)[1]], axis1=1, axis2=2) / 3
                    big = np.abs(dft) >= 5
                    big_dft.append(dft[big])
                    for d, z in ((first, a), (second, b)):
                        large[d].append(np.trace(z[k], axis1=1, axis2=2)[big] / 3)
    dft = np.concatenate(big_dft)
    for d in (first, second):
        print(
            f"{d}: test atoms with |tr Z*/3| >= 5: {len(dft)}, "
            f"median predicted/DFT {np.median(np.concatenate(large[d]) / dft):.3f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay)")
    p.add_argument(
        "--init-backbone",
        default=None,
        help="a model (name or folder) whose split<k>.pt backbone starts split k's Born model (same split: no leak)",
    )
    p.add_argument(
        "--seed-offset", type=int, default=0, help="training seed = split + 100 × this (another member for a split)"
    )
    p.add_argument(
        "--huber-delta", type=float, default=0.5, help="e; large: a squared loss that shrinks large charges less"
    )
    p.add_argument(
        "--ionic-weight", type=float, default=0.0, help="λ of the ε_ion error at fixed force constants (0: off)"
    )
    p.add_argument("--force-field", default="sevennet-l3i5", help="whose cached force constants the ε_ion loss reads")
    p.add_argument("--n-dielectric", type=int, default=2733, help="records of the dielectric file (its splits)")
    p.add_argument("--out", type=Path, default=OUT, help="where the checkpoints, metrics and predictions go")
    p.add_argument("--report", action="store_true")
    p.add_argument("--evaluate-shipped", action="store_true", help="test MAE of the shipped (float16) members")
    p.add_argument(
        "--members", type=Path, default=None, help="with --evaluate-shipped: another folder of split<k>[-*].pt"
    )
    p.add_argument(
        "--sum-rule-tolerance",
        type=float,
        default=SHIPPED_TOLERANCE,
        help="keep records whose |Σ Z*| (e) is below this, the rule enforced (default: as shipped)",
    )
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="pair two runs' predictions")
    p.add_argument("--ionic-compare", nargs="+", type=Path, help="folders of members: ε_ion at fixed force constants")
    args = p.parse_args()
    if args.compare:
        compare(args)
    elif args.ionic_compare:
        ionic_compare(args)
    elif args.evaluate_shipped:
        evaluate_shipped(args)
    else:
        report(args) if args.report else run(args)


if __name__ == "__main__":
    main()
