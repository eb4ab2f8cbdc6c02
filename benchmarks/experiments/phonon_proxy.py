r"""Does a phonon-aware input carry information the default ensemble lacks? A rigid-ion ionic tensor from CHGNet.

The ionic part of ε is the static response of the ions to a field. With Born charges ``Z`` and the Γ-point force
constants ``Φ`` (the Hessian of the energy in the atomic positions, images moving with their atom),

.. math::
    \varepsilon^{\mathrm{ion}}_{\alpha\beta} = \frac{e^2}{\varepsilon_0 \Omega}\,
        b_\alpha^{\mathsf T} \Phi^{+} b_\beta, \qquad (b_\beta)_{i\gamma} = z_i\,\delta_{\gamma\beta}.

Here ``z`` are nominal oxidation states (pymatgen's bond-valence analysis, else its guess) and ``Φ`` is CHGNet's
(0.3.0, float64), never formed: a two-step block Lanczos from ``b`` (six Hessian-vector products by double
backpropagation) gives the Gauss-quadrature estimate ``Rᵀ [T⁻¹]₁₁ R`` with ``b = Q R`` and ``T`` the 6x6 block
tridiagonal matrix; eigenvalues of ``T`` are taken as ``max(|t|, floor)`` (CHGNet is not at a minimum at the DFT
geometry). ``k = 1`` is the single-mode estimate ``Rᵀ A₁⁻¹ R`` (the whole charge pattern moving as one mode).

The report compares the proxy's ε̄ with the DFT ionic ε̄ and asks whether it corrects the `combined` ensemble:
per split, a one-parameter correction is fitted on that split's validation set and scored on its test set.

    python benchmarks/experiments/phonon_proxy.py --shard 0/2 &    # the two shards in parallel: ~21 min
    python benchmarks/experiments/phonon_proxy.py --shard 1/2
    python benchmarks/experiments/phonon_proxy.py --report
    python benchmarks/experiments/phonon_proxy.py --time-hessian   # the cost of the whole Hessian instead (~1 min)
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import time
import warnings
from pathlib import Path

import numpy as np

E2_OVER_EPS0 = 4 * np.pi * 14.399645  # e²/ε₀ in eV·Å
OUT = Path("runs/phonon")


def nominal_charges(structure) -> np.ndarray:
    """Oxidation state per site (bond valence, else pymatgen's guess); NaN where neither works."""
    from pymatgen.analysis.bond_valence import BVAnalyzer

    try:
        decorated = BVAnalyzer().get_oxi_state_decorated_structure(structure)
        return np.array([sp.oxi_state for sp in decorated.species], float)
    except Exception:
        pass
    try:
        guesses = structure.composition.oxi_state_guesses(max_sites=-50)
        if guesses:
            return np.array([guesses[0][site.specie.symbol] for site in structure], float)
    except Exception:
        pass
    return np.full(len(structure), np.nan)


def chgnet_float64():
    """CHGNet 0.3.0 in float64 on the CPU, one thread."""
    import torch
    from chgnet.model import CHGNet

    from goectp.features.chgnet import _chgnet_in_float64

    torch.set_num_threads(1)
    with contextlib.redirect_stdout(io.StringIO()):
        model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False).eval().double()
    _chgnet_in_float64(model)
    return model


def forces_and_positions(model, structure):
    """CHGNet's forces ``[3N]`` with the graph kept for double backpropagation, and the positions ``[N, 3]`` (Å)
    they differentiate by (images follow their atom: Γ-point force constants)."""
    from chgnet.model.model import BatchedGraph

    from goectp.features.chgnet import _to_float64

    graph = _to_float64(model.graph_converter(structure))
    batch = BatchedGraph.from_graphs(
        [graph],
        bond_basis_expansion=model.bond_basis_expansion,
        angle_basis_expansion=model.angle_basis_expansion,
        compute_stress=False,
    )
    forces = model._compute(batch, compute_force=True, compute_stress=False)["f"][0].reshape(-1)
    return forces, batch.atom_positions[0]


def time_full_hessian(sizes=(4, 12, 24, 40)) -> None:
    """Seconds for CHGNet's whole Γ-point Hessian (3N Hessian-vector products) of records of about these sizes:
    what an input that needs every mode (learned Born charges times Φ⁺) would cost."""
    import torch

    from goectp.data import data_dir
    from goectp.data.dielectric import read_dielectric_json

    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    model = chgnet_float64()
    counts = np.array([len(r.structure) for r in records])
    print("| atoms | seconds for the full Hessian (one thread) |\n|---|---|")
    for size in sizes:
        structure = records[int(np.argmin(np.abs(counts - size)))].structure
        start = time.perf_counter()
        forces, positions = forces_and_positions(model, structure)
        for v in torch.eye(forces.numel(), dtype=forces.dtype):
            torch.autograd.grad(forces, positions, grad_outputs=-v, retain_graph=True)
        print(f"| {len(structure)} | {time.perf_counter() - start:.1f} |")
    print(f"\natoms per record: mean {counts.mean():.1f}, sum of squares {np.sum(counts**2):,}")


def compute(shard: int, n_shards: int, out_dir: Path = OUT) -> None:
    import torch

    from goectp.data import data_dir
    from goectp.data.dielectric import read_dielectric_json

    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    model = chgnet_float64()
    out: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    for i in range(shard, len(records), n_shards):
        structure = records[i].structure
        q = out[f"q{i}"] = nominal_charges(structure)
        if not np.all(np.isfinite(q)) or not np.any(q):
            continue
        forces, positions = forces_and_positions(model, structure)  # [3N], [N, 3]

        def hessian_times(vectors: np.ndarray, forces=forces, positions=positions) -> np.ndarray:  # Φ V, V [3N, k]
            cols = []
            for v in vectors.T:
                (g,) = torch.autograd.grad(forces, positions, grad_outputs=-torch.as_tensor(v), retain_graph=True)
                cols.append(g.reshape(-1).numpy())
            return np.stack(cols, 1)

        b = np.zeros((3 * len(structure), 3))
        for axis in range(3):
            b[axis::3, axis] = q
        q1, r1 = np.linalg.qr(b)
        w = hessian_times(q1)
        a1 = q1.T @ w
        q2, b2 = np.linalg.qr(w - q1 @ a1)
        a2 = q2.T @ hessian_times(q2)
        out[f"r{i}"], out[f"a1{i}"], out[f"b2{i}"], out[f"a2{i}"] = r1, a1, b2, a2
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / f"krylov_{shard}.npz", **out)
    print(f"shard {shard}/{n_shards}: {len(out)} arrays in {time.perf_counter() - start:.0f} s")


def proxy_tensors(raw: dict, volumes: np.ndarray, steps: int = 2, floor: float = 1.0) -> np.ndarray:
    """[N, 3, 3] rigid-ion ε_ion estimates; NaN where no charges were found."""
    out = np.full((len(volumes), 3, 3), np.nan)
    for i, volume in enumerate(volumes):
        if f"r{i}" not in raw:
            continue
        a1 = raw[f"a1{i}"]
        t = a1 if steps == 1 else np.block([[a1, raw[f"b2{i}"].T], [raw[f"b2{i}"], raw[f"a2{i}"]]])
        vals, vecs = np.linalg.eigh(0.5 * (t + t.T))
        inverse = (vecs / np.maximum(np.abs(vals), floor)) @ vecs.T
        out[i] = E2_OVER_EPS0 / volume * raw[f"r{i}"].T @ inverse[:3, :3] @ raw[f"r{i}"]
    return out


def report(out_dir: Path = OUT) -> None:
    from scipy.optimize import minimize, minimize_scalar
    from scipy.stats import spearmanr

    from goectp.data import data_dir, split_masks
    from goectp.data.dielectric import read_dielectric_json
    from goectp.tensor_stats import mean_eigenvalue
    from goectp.uncertainty import heldout_predictions, split_means

    records = read_dielectric_json(data_dir() / "mp_dielectric_open.json.gz")
    raw: dict = {}
    for path in sorted(glob.glob(str(out_dir / "krylov_*.npz"))):
        with np.load(path) as d:
            raw.update({k: d[k] for k in d.files})
    volumes = np.array([r.structure.volume for r in records])
    total = np.array([r.target("total") for r in records])
    ionic_bar = mean_eigenvalue(np.array([r.target("ionic") for r in records]))
    have = np.array([f"r{i}" in raw for i in range(len(records))])
    print(f"charges and Krylov blocks for {have.sum()} of {len(records)} records\n")
    print("| proxy | floor (eV/Å²) | ε̄ Spearman with DFT ionic ε̄ | median proxy / DFT ionic ε̄ |")
    print("|---|---|---|---|")
    for steps in (1, 2):
        for floor in (0.05, 1.0):
            p = mean_eigenvalue(proxy_tensors(raw, volumes, steps, floor)[have])
            rho = spearmanr(p, ionic_bar[have]).statistic
            ratio = np.median(p / np.maximum(ionic_bar[have], 1e-3))
            print(f"| {'single mode' if steps == 1 else 'Lanczos, 2 steps'} | {floor} | {rho:.3f} | {ratio:.2f} |")

    held, electronic = heldout_predictions("combined"), heldout_predictions("electronic")
    masks = split_masks(len(records))
    val, test = masks["val"], masks["test"]
    ensemble, eps_inf = split_means(held, test), split_means(electronic, test)  # [5, N, 3, 3] each
    proxy = np.nan_to_num(proxy_tensors(raw, volumes, 2, 1.0))
    proxy_bar = mean_eigenvalue(proxy)

    def corrected(k: int, w: float, kind: str) -> np.ndarray:
        if kind == "add":  # ε + w P
            return ensemble[k] + w * proxy
        ionic = np.maximum(mean_eigenvalue(ensemble[k]) - mean_eigenvalue(eps_inf[k]), 0.1)  # predicted ionic ε̄
        factor = ((proxy_bar + 1) / (ionic + 1)) ** w  # ionic part pulled toward the proxy
        return eps_inf[k] + (ensemble[k] - eps_inf[k]) * factor[:, None, None]

    def scores(pred: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        rho = spearmanr(mean_eigenvalue(pred[rows]), mean_eigenvalue(total[rows])).statistic
        return float(np.abs(pred[rows] - total[rows]).mean()), float(rho)

    rows0 = test[0]
    model_ionic = mean_eigenvalue(ensemble[0][rows0]) - mean_eigenvalue(eps_inf[0][rows0])
    residual = np.log(mean_eigenvalue(total[rows0]) / mean_eigenvalue(ensemble[0][rows0]))
    proxy_vs_model = np.log((proxy_bar[rows0] + 1) / np.maximum(model_ionic, 0.1))
    print(
        f"\nsplit 0 test: ionic ε̄ Spearman, `combined` − `electronic` "
        f"{spearmanr(model_ionic, ionic_bar[rows0]).statistic:.3f}, proxy "
        f"{spearmanr(proxy_bar[rows0], ionic_bar[rows0]).statistic:.3f}; Spearman of log(true/predicted ε̄) with "
        f"log(proxy / predicted ionic) {spearmanr(residual, proxy_vs_model).statistic:.3f}\n"
    )
    print(
        "| correction (w fitted per split on its validation set) | w per split | val MAE | test MAE | test ε̄ Spearman |"
    )
    print("|---|---|---|---|---|")
    base = np.array([[*scores(ensemble[k], val[k]), *scores(ensemble[k], test[k])] for k in range(5)]).mean(0)
    print(f"| none (`combined`) | – | {base[0]:.3f} | {base[2]:.3f} | {base[3]:.4f} |")
    for kind, label in (("add", "ε + w·P"), ("scale", "ionic part × ((P̄+1)/(ionic ε̄+1))^w")):
        ws, got = [], []
        for k in range(5):
            fit = minimize_scalar(
                lambda w, k=k, kind=kind: scores(corrected(k, w, kind), val[k])[0], bounds=(-1, 1), method="bounded"
            )
            ws.append(fit.x)
            got.append([*scores(corrected(k, fit.x, kind), val[k]), *scores(corrected(k, fit.x, kind), test[k])])
        m = np.mean(got, 0)
        print(f"| {label} | {', '.join(f'{w:+.3f}' for w in ws)} | {m[0]:.3f} | {m[2]:.3f} | {m[3]:.4f} |")
    # the shipped ε∞ model as the extra input instead: a ε + b ε∞ + c I, three weights per split
    got = []
    for k in range(5):
        blend = lambda w, k=k: w[0] * ensemble[k] + w[1] * eps_inf[k] + w[2] * np.eye(3)  # noqa: E731
        fit = minimize(lambda w, k=k, blend=blend: scores(blend(w), val[k])[0], [1.0, 0.0, 0.0], method="Nelder-Mead")
        got.append([*scores(blend(fit.x), val[k]), *scores(blend(fit.x), test[k])])
    m = np.mean(got, 0)
    print(f"| a·ε + b·ε∞ (`electronic`) + c·I | – | {m[0]:.3f} | {m[2]:.3f} | {m[3]:.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", help="i/n: compute the Krylov blocks of records i, i+n, ... (CHGNet, one thread)")
    ap.add_argument("--report", action="store_true", help="tables from the computed shards")
    ap.add_argument("--out", type=Path, default=OUT, help=f"folder of the shards (default {OUT})")
    ap.add_argument("--time-hessian", action="store_true", help="time CHGNet's full Hessian for 4-40 atom records")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    if args.time_hessian:
        time_full_hessian()
    if args.shard:
        i, n = (int(x) for x in args.shard.split("/"))
        compute(i, n, args.out)
    if args.report:
        report(args.out)


if __name__ == "__main__":
    main()
