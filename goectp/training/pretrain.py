r"""Scalar pretraining (the paper's Fig. 1b): train the backbone ``g`` with an invariant scalar head, then fine-tune.

.. math::
    \hat y = s\,\mathrm{MLP}(\mathrm{pool}_i\, h_i) + \mu, \qquad
    \mathcal L = \mathrm{Huber}_\delta(\hat y - y)

The frame is not applied to a scalar, and ``g`` sees only canonical vectors ``Fᵀ r``, so the scalar model is
O(3)-invariant. Fine-tuning (``goectp train --init-from CKPT`` or :func:`backbone_state`) copies every backbone
tensor into a tensor-head model and leaves the new head freshly initialised; all parameters are then trained.

The paper pretrains on 133k Materials Project formation energies (jarvis-tools ``megnet2``, lr 1e-3, 500 epochs)
and fine-tunes with lr 1e-2 for 40 epochs. :data:`SCALAR_DATASETS` lists what works here without a download (subsets
of the shared screening pool, ``screening_candidates.json.gz``; no dielectric labels) and ``megnet2`` for users with
internet. A scalar JSON file ``{id: {"structure": Structure.as_dict(), "value": float}}`` works too.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from goectp.checkpoint import CheckpointError, atomic_save, load_cache, load_checkpoint
from goectp.data.paths import CANDIDATES_FILE, cache_dir, data_dir, sha256_file
from goectp.data.splits import random_split
from goectp.device import default_device
from goectp.graph import CrystalGraph, build_crystal_graph
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.training.config import TrainConfig
from goectp.training.loop import evaluate_mae, set_seed, train

logger = logging.getLogger(__name__)

SCALAR_CACHE_VERSION = 1
MEGNET2_FILE = "megnet2_formation_energy.json.gz"


@dataclass
class ScalarRecord:
    """A structure with one scalar label."""

    id: str
    structure: Any  # pymatgen Structure
    value: float


# ------------------------------------------------------------------------------------------- scalar datasets
def _from_pool(sources: tuple[str, ...], value: Callable[[dict], float | None]) -> Callable[[list[dict]], list]:
    def select(entries: list[dict]) -> list[tuple[str, dict, float]]:
        out = []
        for e in entries:
            v = value(e) if e["source"].startswith(sources) else None
            if v is not None and math.isfinite(v):
                out.append((e["id"], e["structure"], float(v)))
        return out

    return select


def _log_modulus(key: str) -> Callable[[dict], float | None]:
    """log10 of a positive elastic modulus in ``extra[key]`` (GPa); None where absent or not positive."""

    def value(e: dict) -> float | None:
        m = (e.get("extra") or {}).get(key)
        return math.log10(m) if m is not None and m > 0 else None

    return value


#: Scalar sets cut from the shared screening pool: name → (description with units, selector).
SCALAR_DATASETS: dict[str, tuple[str, Callable[[list[dict]], list]]] = {
    "perov5-formation": (
        "perov_5 (Castelli 2012 via CDVAE) heat of formation `heat_ref` in eV as given; the source does not state "
        "the normalisation, but every cell has 5 atoms, so per cell and per atom differ by a constant factor and "
        "the standardised target is the same (~7.6k 5-atom ABX3 perovskite cells)",
        _from_pool(("cdvae-perov_5",), lambda e: e.get("formation_energy")),
    ),
    "wbm-formation": (
        "WBM corrected formation energy, eV/atom (matcalc; ~1k diverse structures)",
        _from_pool(("matcalc-wbm",), lambda e: e.get("formation_energy")),
    ),
    "band-gap": (
        "band gap, eV (GLLB-SC for perov_5, PBE for MP/WBM/Alexandria; ~8.8k, most perov_5 gaps are 0)",
        _from_pool(("",), lambda e: e.get("band_gap")),
    ),
    "log-bulk-modulus": (
        "log10 of the VRH bulk modulus in GPa (matcalc MP binaries, PBE; ~3.6k diverse binaries)",
        _from_pool(("matcalc-mp-binary",), _log_modulus("bulk_modulus_vrh")),
    ),
    "log-shear-modulus": (
        "log10 of the VRH shear modulus in GPa (matcalc MP binaries, PBE; the same ~3.6k structures)",
        _from_pool(("matcalc-mp-binary",), _log_modulus("shear_modulus_vrh")),
    ),
}


def read_candidate_pool(path: str | os.PathLike) -> list[dict]:
    """The screening pool: a gzipped JSON list of ``{"id", "structure", "source", "formation_energy", ...}``."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list) or (entries and not {"id", "structure", "source"} <= set(entries[0])):
        raise ValueError(f"{path}: expected a JSON list of candidates with 'id', 'structure' and 'source'")
    return entries


def records_from_megnet(entries: Iterable[dict]) -> list[ScalarRecord]:
    """Parse jarvis-tools ``megnet2`` (``formation_energy_per_atom``) or ``megnet`` (``e_form``) entries, eV/atom."""
    from goectp.data.loaders import structure_from_jarvis_atoms

    out = []
    for i, e in enumerate(entries):
        value = e.get("formation_energy_per_atom", e.get("e_form"))
        if value in (None, "na") or not math.isfinite(float(value)):
            continue
        rid = str(e.get("id") or e.get("jid") or f"megnet-{i}")
        out.append(ScalarRecord(rid, structure_from_jarvis_atoms(e["atoms"]), float(value)))
    return out


def write_scalar_json(records: list[ScalarRecord], path: str | os.PathLike) -> Path:
    """Write ``{id: {"structure": ..., "value": ...}}`` (gzipped when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump({r.id: {"structure": r.structure.as_dict(), "value": r.value} for r in records}, f)
    return path


def read_scalar_json(path: str | os.PathLike) -> list[ScalarRecord]:
    """Read a scalar JSON file written by :func:`write_scalar_json`."""
    from goectp.structures import structure_from_dict

    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rt", encoding="utf-8") if gz else open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or any(not isinstance(v, dict) or "value" not in v for v in data.values()):
        raise ValueError(f"{path}: expected {{id: {{'structure': ..., 'value': float}}}}")
    return [
        ScalarRecord(str(k), structure_from_dict(v.get("structure"), f"{path.name}: record {k!r}"), float(v["value"]))
        for k, v in data.items()
    ]


def fetch_megnet2(out: str | os.PathLike | None = None) -> Path:
    """Download jarvis-tools ``megnet2`` (133k MP formation energies, eV/atom) into a scalar JSON file.

    Needs internet and ``pip install jarvis-tools`` (the ``loaders`` extra).
    """
    try:
        from jarvis.db.figshare import data as jarvis_data
    except ImportError as exc:
        raise RuntimeError("megnet2 needs jarvis-tools: pip install 'goectp-explorer[loaders]'") from exc
    return write_scalar_json(records_from_megnet(jarvis_data("megnet2")), out or cache_dir() / MEGNET2_FILE)


# ------------------------------------------------------------------------------------------- graphs
@dataclass
class ScalarSet:
    """Graphs (each with ``y`` ``[1]``) and their labels."""

    name: str
    ids: list[str]
    graphs: list[CrystalGraph]
    values: np.ndarray
    source_sha256: str | None = None
    source_path: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: Iterable[int]) -> ScalarSet:
        idx = [int(i) for i in idx]
        return ScalarSet(
            self.name,
            [self.ids[i] for i in idx],
            [self.graphs[i] for i in idx],
            self.values[idx],
            self.source_sha256,
            self.source_path,
        )


def scalar_graphs(
    items: Iterable[tuple[str, Any, float]],
    name: str,
    k: int = 16,
    progress: bool = True,
    source_sha256: str | None = None,
) -> ScalarSet:
    """``(id, structure or its dict, value)`` → :class:`ScalarSet`; unusable structures are skipped (counted)."""
    from goectp.structures import structure_from_dict

    ids, graphs, values, bad = [], [], [], []
    for rid, struct, value in tqdm(list(items), desc=f"graphs {name}", disable=not progress, leave=False):
        try:
            s = structure_from_dict(struct) if isinstance(struct, dict) else struct
            g = build_crystal_graph(s, k=k)
        except ValueError as exc:
            bad.append((rid, str(exc)))
            continue
        g.y = torch.tensor([value], dtype=torch.float64)
        ids.append(rid)
        graphs.append(g)
        values.append(value)
    if bad:
        logger.warning("skipped %d unusable structures, e.g. %s: %s", len(bad), bad[0][0], bad[0][1])
    return ScalarSet(name, ids, graphs, np.asarray(values, dtype=np.float64), source_sha256)


def load_scalar_set(
    dataset: str,
    data_dir_: str | os.PathLike | None = None,
    k: int = 16,
    use_cache: bool = True,
    progress: bool = True,
    limit: int | None = None,
) -> ScalarSet:
    """A named scalar set (:data:`SCALAR_DATASETS` from the screening pool, or ``megnet2``) or a scalar JSON file.

    Graphs are cached in the goectp cache directory, keyed by the source file's sha256. ``limit`` keeps the first
    ``limit`` records (quick runs and tests).
    """
    if dataset in SCALAR_DATASETS:
        source = data_dir(data_dir_) / CANDIDATES_FILE
    elif dataset == "megnet2":
        source = cache_dir() / MEGNET2_FILE
        if not source.exists():
            logger.info("megnet2 not in the cache: downloading it to %s (jarvis-tools, internet)", source)
            fetch_megnet2(source)
    elif Path(dataset).is_file():
        source = Path(dataset)
    else:
        raise ValueError(
            f"unknown scalar dataset {dataset!r}: choose one of {[*SCALAR_DATASETS, 'megnet2']} "
            "or give a scalar JSON file"
        )
    sha = sha256_file(source)
    name = dataset if dataset in SCALAR_DATASETS or dataset == "megnet2" else Path(dataset).name.split(".")[0]
    key = hashlib.sha256(f"{sha}-{name}-k{k}-n{limit}-v{SCALAR_CACHE_VERSION}".encode()).hexdigest()[:20]
    cache = cache_dir() / f"scalar-graphs-{name}-{key}.pt"
    if use_cache and cache.exists():
        try:  # weights_only=True with the graph classes allowed; an unreadable cache is rebuilt
            return replace(ScalarSet(**load_cache(cache)), source_path=str(source))
        except CheckpointError as exc:
            logger.warning("ignoring the unreadable cache %s: %s", cache, exc)
    if dataset in SCALAR_DATASETS:
        items = SCALAR_DATASETS[dataset][1](read_candidate_pool(source))
    else:
        items = [(r.id, r.structure, r.value) for r in read_scalar_json(source)]
    if not items:
        raise ValueError(f"{dataset}: no structures with a label in {source}")
    ss = replace(scalar_graphs(items[:limit], name, k=k, progress=progress, source_sha256=sha), source_path=str(source))
    if use_cache:
        atomic_save(ss.__dict__, cache)
    return ss


def featured_scalar_set(ss: ScalarSet, name: str = "chgnet", progress: bool = True) -> ScalarSet:
    """``ss`` with foundation features ``x_extra`` on its graphs, cached per source file (see
    :func:`goectp.features.dataset_features`), for pretraining a ``node_features`` model."""
    from goectp.features import attach_features, dataset_features
    from goectp.structures import structure_from_dict

    if ss.source_path is None:
        raise ValueError(f"scalar set {ss.name!r} does not know its source file: load it with load_scalar_set")

    def structures() -> dict:
        wanted = set(ss.ids)
        if ss.name in SCALAR_DATASETS:
            return {
                e["id"]: structure_from_dict(e["structure"])
                for e in read_candidate_pool(ss.source_path)
                if e["id"] in wanted
            }
        return {r.id: r.structure for r in read_scalar_json(ss.source_path) if r.id in wanted}

    stored = dataset_features(ss.source_path, ss.ids, structures, name, progress=progress)
    return replace(ss, graphs=attach_features(ss.graphs, ss.ids, stored))


# ------------------------------------------------------------------------------------------- pretrain / fine-tune
def scalar_model_config(model_cfg: GoeCTPConfig) -> GoeCTPConfig:
    """The same backbone with the invariant scalar head (no symmetrisation or PD constraint: they are tensor-only)."""
    return replace(model_cfg, head="scalar", symmetrize=False, positive_definite=False)


def pretrain(
    scalar_set: ScalarSet,
    model_cfg: GoeCTPConfig,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = True,
    run_meta: dict | None = None,
) -> dict:
    """Pretrain a scalar-head model on an 80/10/10 split (``cfg.split_seed``) of ``scalar_set``.

    ``run_meta``: more checkpoint metadata (the CLI's ``run_config``).

    Writes ``best.pt`` (best validation MAE; load its backbone with :func:`backbone_state`), ``last.pt``,
    ``history.json`` and ``metrics.json`` (validation/test MAE in the label's units, timing).
    """
    out = Path(out_dir)
    parts = {k: scalar_set.subset(v) for k, v in random_split(len(scalar_set), cfg.split_seed).items()}
    mcfg = scalar_model_config(model_cfg)
    set_seed(cfg.seed)
    model = GoeCTP(mcfg)
    t0 = time.perf_counter()
    hist = train(
        model,
        parts["train"].graphs,
        parts["val"].graphs,
        cfg,
        out,
        resume=resume,
        meta={"pretrain_dataset": scalar_set.name, "source_sha256": scalar_set.source_sha256, **(run_meta or {})},
    )
    seconds = time.perf_counter() - t0
    best = load_checkpoint(out / "best.pt")
    device = default_device(cfg.device)
    test_mae = evaluate_mae(best.to(device), DataLoader(parts["test"].graphs, batch_size=cfg.batch_size), device)
    summary = {
        "dataset": scalar_set.name,
        "source_sha256": scalar_set.source_sha256,
        "n": len(scalar_set),
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        "label_std": float(np.std(scalar_set.values)),
        "model_config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "best_epoch": hist["best_epoch"],
        "best_val_mae": hist["best_val_mae"],
        "test_mae": test_mae,
        "seconds_this_call": seconds,
        "seconds_total": float(sum(h["seconds"] for h in hist["history"])),
        "epoch_seconds_median": float(np.median([h["seconds"] for h in hist["history"]])),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


#: State-dict prefixes of the heads, which fine-tuning re-initialises (everything else is the backbone).
HEAD_PREFIXES = ("head.", "ionic_head.")


def backbone_state(
    checkpoint: str | os.PathLike,
    model_cfg: GoeCTPConfig,
    verbose: bool = True,
    split_seed: int | None = None,
    data_sha256: str | None = None,
) -> dict:
    """The backbone tensors of a (pretrained) checkpoint for ``model_cfg``: every tensor except the heads'
    (``head.*``, and ``ionic_head.*`` of ``decompose``).

    The one weight-transfer helper (``goectp train --init-from`` and the benchmarks use it). Pass the result as
    ``init_state`` to :func:`goectp.training.run_split`; the head stays freshly initialised. ``split_seed`` and
    ``data_sha256`` name the split about to be trained: a checkpoint fine-tuned on *another* split of the same data
    file is refused, because its weights have seen that split's test crystals.

    Raises:
        ValueError: any backbone tensor of the new model is missing from the checkpoint or has another shape
            (a different ``hidden``/``variant``/``num_rbf``/node features): fine-tuning from a half-loaded
            backbone would silently train from scratch; or the checkpoint was fine-tuned on another split.
    """
    loaded = load_checkpoint(checkpoint)
    if not isinstance(loaded, GoeCTP):
        raise ValueError(f"{checkpoint}: a sum of two networks (ε∞ + ionic), not one backbone; initialise from a part")
    trained_on = loaded.meta.get("split_seed")
    same_data = loaded.meta.get("data_sha256") in (None, data_sha256)
    if split_seed is not None and trained_on is not None and same_data and int(trained_on) != split_seed:
        raise ValueError(
            f"{checkpoint}: fine-tuned on split {trained_on} of this data; initialising split {split_seed} from it "
            f"would train on crystals of that split's test set (give the ensemble folder to start each split from "
            f"its own member)"
        )
    src = loaded.state_dict()
    own = GoeCTP(model_cfg).state_dict()
    backbone = [k for k in own if not k.startswith(HEAD_PREFIXES)]
    missing = [k for k in backbone if k not in src]
    mismatched = [
        f"{k} {tuple(src[k].shape)} vs {tuple(own[k].shape)}"
        for k in backbone
        if k in src and src[k].shape != own[k].shape
    ]
    extra = [k for k in src if not k.startswith(HEAD_PREFIXES) and k not in own]
    if missing or mismatched or extra:
        parts = [f"{len(mismatched)} of other shape (checkpoint vs model): {', '.join(mismatched[:4])}"] * bool(
            mismatched
        )
        parts += [f"{len(missing)} missing from the checkpoint: {', '.join(missing[:4])}"] * bool(missing)
        parts += [f"{len(extra)} not in the model: {', '.join(extra[:4])}"] * bool(extra)
        raise ValueError(
            f"{checkpoint}: its backbone does not fit the model configuration ({'; '.join(parts)}); "
            "use the --variant/--hidden/--layers/--node-features the checkpoint was trained with"
        )
    if verbose:
        logger.info("initialised all %d backbone tensors from %s (head re-initialised)", len(backbone), checkpoint)
    return {k: src[k] for k in backbone}


def init_checkpoint(init_from: str | os.PathLike, split_seed: int) -> Path:
    """The file ``--init-from`` means for one split: a file as given; an ensemble (a folder or a shipped name) →
    its member fine-tuned on that split, so each split starts from weights that never saw its test crystals."""
    from goectp.checkpoint import read_checkpoint
    from goectp.registry import ensemble_members, resolve_model_path

    path = resolve_model_path(init_from)
    if path.is_file():
        return path
    seeds = {}
    for _, file in ensemble_members(path):
        seeds[file] = read_checkpoint(file).get("meta", {}).get("split_seed")
        if seeds[file] == split_seed:
            return file
    raise ValueError(
        f"{init_from}: no member fine-tuned on split {split_seed} (its members' splits: "
        f"{sorted({s for s in seeds.values() if s is not None}) or 'none recorded'})"
    )
