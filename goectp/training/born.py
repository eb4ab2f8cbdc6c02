"""Training the Born-charge model (:class:`goectp.models.born.BornChargeModel`) on the DFPT Born charges.

Records: those of ``mp_born_charges.json.gz`` whose charges obey the acoustic sum rule (``|Σ_i Z*_i| < 0.1 e``
by default, :data:`~goectp.physics.born_data.SUM_RULE_TOLERANCE`; the data README calls the 14 above 1 e damaged).
With a looser ``sum_rule_tolerance`` the records between the two are kept with the rule enforced
(:func:`~goectp.physics.ionic.enforce_acoustic_sum_rule`: the mean charge subtracted, as the model's own output obeys
the rule exactly). Splits follow the dielectric set's (:func:`goectp.data.random_split` over the
records of ``mp_dielectric_open.json.gz`` in file order), so a crystal in the test split of seed ``k`` is in no
training set of seed ``k`` — for the charges or for the dielectric models — and the two can be combined without
leaks. Loss: Huber on the nine components of every atom, plus (``ionic_weight`` λ > 0) λ times the relative error of
the ionic tensor the charges give at fixed force constants (:func:`ionic_operator`: what ε_ion squares is the charges'
projection on the soft polar modes, which a per-atom loss weighs no more than any other component); AdamW; cosine
decay; best validation loss kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure
from torch.nn import functional as fn
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from goectp.graph import CrystalGraph, build_crystal_graph
from goectp.models.born import BornChargeModel, with_site_operations
from goectp.models.goectp import GoeCTPConfig
from goectp.physics.ionic import E2_OVER_EPS0, THZ, enforce_acoustic_sum_rule, ionic_modes

logger = logging.getLogger(__name__)


@dataclass
class BornGraphs:
    """Graphs (canonical cells) with the target ``born`` ``[N, 3, 3]`` in graph-node order, and their records."""

    ids: list[str]
    graphs: list
    dielectric_index: np.ndarray  # position of each record in the dielectric file (for the splits)
    skipped: dict[str, str]  # id → why it was left out


def born_graphs(
    data_dir: str | Path,
    k: int = 16,
    max_sites: int = 500,
    progress: bool = False,
    sum_rule_tolerance: float | None = None,
) -> BornGraphs:
    """The training graphs of the Born-charge set (see the module docstring); ``sum_rule_tolerance`` (e) defaults to
    :data:`~goectp.physics.born_data.SUM_RULE_TOLERANCE`."""
    from goectp.data.dielectric import read_dielectric_json
    from goectp.physics.born_data import SUM_RULE_TOLERANCE, read_born_charges

    tolerance = SUM_RULE_TOLERANCE if sum_rule_tolerance is None else sum_rule_tolerance

    data_dir = Path(data_dir)
    order = {r.id: i for i, r in enumerate(read_dielectric_json(data_dir / "mp_dielectric_open.json.gz"))}
    records = read_born_charges(data_dir / "mp_born_charges.json.gz")
    ids, graphs, index, skipped = [], [], [], {}
    for n, (key, rec) in enumerate(sorted(records.items())):
        if progress and n % 200 == 0:
            logger.info("graphs %d/%d", n, len(records))
        if key not in order:
            skipped[key] = "not in the dielectric set"
            continue
        if rec.sum_rule_error >= tolerance:
            skipped[key] = f"acoustic sum rule broken by {rec.sum_rule_error:.3g} e (damaged in the source)"
            continue
        if len(rec.structure) > max_sites:
            skipped[key] = f"{len(rec.structure)} sites"
            continue
        graph = build_crystal_graph(rec.structure, k=k, canonical=True)
        weights = node_mapping(graph, rec.structure)
        if weights is None:
            skipped[key] = "the atoms of the canonical cell do not map onto the record's sites"
            continue
        charges = rec.born_charges if rec.sum_rule_holds else enforce_acoustic_sum_rule(rec.born_charges)
        graph.born = torch.from_numpy(np.einsum("ij,jab->iab", weights, charges))
        graphs.append(with_site_operations(graph))
        ids.append(key)
        index.append(order[key])
    return BornGraphs(ids, graphs, np.array(index), skipped)


def node_mapping(graph: CrystalGraph, structure: Structure, tol: float = 0.1) -> np.ndarray | None:
    """:func:`goectp.physics.born_data.cell_mapping` from a crystal graph's cell to ``structure``'s sites."""
    from goectp.physics.born_data import cell_mapping

    lattice_cols = graph.lattice[0].double().numpy()
    return cell_mapping(lattice_cols, graph.frac.double().numpy(), graph.z.numpy(), structure, tol)


def element_charges(graphs: Sequence) -> dict[int, float]:
    """Mean of tr(Z*)/3 per atomic number over ``graphs`` (the isotropic prior and the baseline)."""
    sums: dict[int, list[float]] = {}
    for g in graphs:
        traces = torch.diagonal(g.born, dim1=-2, dim2=-1).mean(-1).tolist()
        for z, t in zip(g.z.tolist(), traces):
            sums.setdefault(z, []).append(t)
    return {z: float(np.mean(v)) for z, v in sums.items()}


def baseline_charges(graph: CrystalGraph, charges: dict[int, float]) -> torch.Tensor:
    """Per-element isotropic mean charges, sum rule enforced: ``(q_i − mean_j q_j) I`` ``[N, 3, 3]``."""
    q = torch.tensor([charges.get(z, 0.0) for z in graph.z.tolist()], dtype=torch.float64)
    return (q - q.mean())[:, None, None] * torch.eye(3, dtype=torch.float64)


#: optical modes stored per graph for the ε_ion loss (3 per atom of a 40-atom cell, the largest with force constants)
MAX_MODES = 120


def ionic_operator(force_constants: np.ndarray, volume: float, masses: np.ndarray) -> np.ndarray | None:
    """``A`` ``[N, K, 3]`` with ε_ion = Σ_k q_k q_kᵀ, ``q_k[a] = Σ_ic Z*_i[a, c] A[i, k, c]``, for charges that obey
    the acoustic sum rule: ``A[i, m, c] = √(e²/(ε₀ Ω ω_m²)) e_m[i, c] / √M_i`` over the modes
    :func:`~goectp.physics.ionic.ionic_modes` sums (the closed form, mode by mode). ``None`` when a mode is unstable
    (the physics term is not used there)."""
    n = len(masses)
    modes = ionic_modes(np.zeros((n, 3, 3)), force_constants, volume, masses)
    if modes.num_unstable:
        return None
    keep = modes.included
    weight = np.sqrt(E2_OVER_EPS0 / volume) * THZ / modes.frequency_thz[keep]  # √(e²/ε₀Ω) / ω_m
    vectors = modes.eigenvectors[keep] / np.sqrt(np.asarray(masses, float))[None, :, None]  # [K, N, 3]
    return np.transpose(weight[:, None, None] * vectors, (1, 0, 2))


def ionic_tensor(charges: torch.Tensor, operator: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """ε_ion ``[G, 3, 3]`` of each graph from charges ``[N, 3, 3]`` and their :func:`ionic_operator` ``[N, K, 3]``
    (zero-padded to a common K), nodes assigned to graphs by ``batch`` ``[N]``."""
    per_node = torch.einsum("iac,ikc->iak", charges, operator)  # [N, 3, K]
    mode_charges = per_node.new_zeros((num_graphs, *per_node.shape[1:])).index_add_(0, batch, per_node)  # [G, 3, K]
    return torch.einsum("gak,gbk->gab", mode_charges, mode_charges)


def with_ionic_targets(graphs: Sequence, operators: Sequence[np.ndarray | None]) -> int:
    """Give every graph (in place) ``ionic_op`` ``[N, MAX_MODES, 3]`` (its :func:`ionic_operator` in graph-node
    order, zero-padded; zeros without one), ``ionic_eps`` ``[1, 3, 3]`` (ε_ion of its DFT charges, sum rule
    enforced) and ``has_ionic`` ``[1]``. Returns how many have an operator."""
    count = 0
    for graph, op in zip(graphs, operators):
        n = graph.num_nodes
        padded = np.zeros((n, MAX_MODES, 3))
        if op is not None:
            if op.shape[0] != n or op.shape[1] > MAX_MODES:
                raise ValueError(f"an ionic operator of shape {op.shape} for a graph of {n} nodes")
            padded[:, : op.shape[1]] = op
            count += 1
        target = np.einsum("iac,ikc->ak", enforce_acoustic_sum_rule(graph.born.double().numpy()), padded)
        graph.ionic_op = torch.from_numpy(padded).float()
        graph.ionic_eps = torch.from_numpy(target @ target.T)[None].float()
        graph.has_ionic = torch.tensor([op is not None])
    return count


def ionic_error(charges: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per graph of ``batch`` with an operator: mean |Δε_ion| over the nine components between ``charges`` ``[N, 3,
    3]`` and the DFT charges, over (1 + the DFT charges' ε̄_ion) ``[G']``."""
    eps = ionic_tensor(charges, batch.ionic_op.to(charges.dtype), batch.batch, batch.num_graphs)
    target = batch.ionic_eps.to(eps.dtype)
    scale = 1.0 + torch.diagonal(target, dim1=-2, dim2=-1).mean(-1)
    err = (eps - target).abs().mean(dim=(1, 2)) / scale
    return err[batch.has_ionic]


@dataclass
class BornTrainConfig:
    """Settings of :func:`train_born_model`; the model is a mean-pooled ``goectp`` backbone with a per-atom head."""

    hidden: int = 64
    num_layers: int = 2
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-5
    huber_delta: float = 0.5
    seed: int = 0
    #: torch dtype the model trains in (it is returned in float64)
    dtype: str = "float32"
    #: λ: weight of the ε_ion error at fixed force constants (graphs need :func:`with_ionic_targets`; 0: charges only)
    ionic_weight: float = 0.0
    #: a GoeCTP checkpoint whose backbone (embeddings and message layers, not the head) starts the Born model; its
    #: architecture then replaces ``hidden`` and ``num_layers`` (use a member trained on the same split's training set)
    init_backbone: str | None = None


def born_model_from_backbone(path: str | Path) -> BornChargeModel:
    """A Born-charge model whose backbone is the trained GoeCTP checkpoint ``path``'s (its graph-level head dropped);
    the per-atom head and the element charges start fresh."""
    from goectp.checkpoint import load_checkpoint
    from goectp.models.goectp import GoeCTP

    trained = load_checkpoint(Path(path))
    if not isinstance(trained, GoeCTP):
        raise ValueError(f"{path}: not a GoeCTP checkpoint ({type(trained).__name__})")
    model = BornChargeModel(trained.config)
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: backbone weights do not fit (missing {missing}, unexpected {unexpected})")
    return model


def train_born_model(
    train: Sequence, val: Sequence, cfg: BornTrainConfig, log: Callable[[str], None] = logger.info
) -> tuple[BornChargeModel, dict]:
    """Train on the graphs ``train`` (with ``born``, see :func:`born_graphs`); keep the weights of the epoch with the
    lowest validation loss (charge MAE, plus λ times the mean ε_ion error when ``cfg.ionic_weight`` λ > 0).

    Returns the model (float64, eval mode) and ``{"history": [{"epoch" (0-based), "train_loss", "val_mae",
    "val_ionic" (NaN without λ), "s"}, ...], "best_val_mae", "best_val_ionic", "charges"}`` (``charges``:
    :func:`element_charges` of ``train``)."""
    torch.manual_seed(cfg.seed)
    dtype = getattr(torch, cfg.dtype)
    if cfg.init_backbone:
        model = born_model_from_backbone(cfg.init_backbone).to(dtype)
    else:
        model = BornChargeModel(
            GoeCTPConfig(variant="goectp", hidden=cfg.hidden, num_layers=cfg.num_layers, pooling="mean")
        ).to(dtype)
    charges = element_charges(train)
    residual = torch.cat([g.born - baseline_charges(g, charges) for g in train])
    model.set_charges(charges, scale=float(residual.std()))
    loader = DataLoader(list(train), batch_size=cfg.batch_size, shuffle=True)
    val_loader = DataLoader(list(val), batch_size=64)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    best, best_state, history = math.inf, None, []  # best validation loss, its weights
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            pred = model(batch)
            loss = fn.huber_loss(pred, batch.born.to(dtype), delta=cfg.huber_delta)
            if cfg.ionic_weight:
                err = ionic_error(pred, batch)
                loss = loss + cfg.ionic_weight * (err.mean() if len(err) else 0.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
        mae = born_mae(model, val_loader)
        ionic = ionic_val_error(model, val_loader) if cfg.ionic_weight else float("nan")
        val_loss = mae + cfg.ionic_weight * ionic if cfg.ionic_weight else mae
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / count,
                "val_mae": mae,
                "val_ionic": ionic,
                "s": time.perf_counter() - start,
            }
        )
        if val_loss < best:
            best, best_state, best_record = val_loss, copy.deepcopy(model.state_dict()), history[-1]
        log(
            f"  epoch {epoch:3d} loss {total / count:.4f} val MAE {mae:.4f} ε_ion error {ionic:.4f}"
            f" ({history[-1]['s']:.0f} s)"
        )
    model.load_state_dict(best_state)
    return model.double().eval(), {
        "history": history,
        "best_val_mae": best_record["val_mae"],
        "best_val_ionic": best_record["val_ionic"],
        "charges": charges,
    }


@torch.no_grad()
def predict_born(model: BornChargeModel, graphs: Sequence, batch_size: int = 64) -> list[np.ndarray]:
    """Predicted ``[N_i, 3, 3]`` per graph (graph-node order)."""
    model.eval()
    out = []
    for batch in DataLoader(list(graphs), batch_size=batch_size):
        z = model(batch).double().numpy()
        sizes = np.bincount(batch.batch.numpy(), minlength=batch.num_graphs)
        out += np.split(z, np.cumsum(sizes)[:-1])
    return out


@torch.no_grad()
def ionic_val_error(model: BornChargeModel, loader: DataLoader) -> float:
    """Mean :func:`ionic_error` over the graphs of ``loader`` that have an ionic operator (NaN when none has)."""
    model.eval()
    errs = torch.cat([ionic_error(model(b).double(), b) for b in loader])
    return float(errs.mean()) if len(errs) else float("nan")


@torch.no_grad()
def born_mae(model: BornChargeModel, loader: DataLoader) -> float:
    """Mean |Δ| (e) over the nine components of every atom of ``loader``'s graphs."""
    model.eval()
    errs = [(model(b).double() - b.born).abs().mean(dim=(1, 2)) for b in loader]
    return float(torch.cat(errs).mean())
