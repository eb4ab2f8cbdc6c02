"""Score one chunk of candidates: parse → check → graph → ensemble prediction → statistics.

:func:`score_chunk` runs unchanged in the driver process (``--no-dask``) or as a Dask task. It never raises for a
bad structure: each candidate becomes one row with ``status`` ``scored``, ``rejected`` (bad structure),
``excluded`` (training data), with a ``reason_code`` and a human ``reason``.

Reason codes: those of :data:`goectp.structures.REASON_CODES` (``unparseable``, ``unknown_element``, ``too_large``,
``disordered``, ``overlapping_atoms``, ``absurd_lattice``, ``too_few_neighbors``, …, ``invalid_structure``), and
``duplicate_id``, ``graph_error``, ``features_error``, ``model_error``, ``in_training``, and from the bounded
parse/check (:func:`_parse_and_check_bounded`) ``out_of_memory``, ``timeout``, ``worker_died``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from goectp.elements import element_symbols
from goectp.screening.filters import TrainingIndex
from goectp.screening.model_spec import ModelSpec, cached_ensemble
from goectp.screening.scoring import COMPONENT_NAMES, ensemble_statistics, tensor_components
from goectp.structures import StructureError, structure_from_dict, structure_from_string, validate_structure

STATS_COLUMNS = [
    "eps_mean",
    "eps_mean_std",
    "anisotropy",
    "anisotropy_std",
    "eps_eig1",
    "eps_eig2",
    "eps_eig3",
    *[f"eps_{c}" for c in COMPONENT_NAMES],
    *[f"std_{c}" for c in COMPONENT_NAMES],
]
PART_COLUMNS = [
    "id",
    "pool_index",
    "status",
    "reason_code",
    "reason",
    "source",
    "formula",
    "material_id",
    "band_gap",
    "n_sites",
    "volume",
    "crystal_system",
    "spacegroup",
    *STATS_COLUMNS,
    "nonpositive",
    "members_nonpositive",
    "n_members",
    "ood_flag",
    "ood_reason",
    "calibrated",
    "device",
    "worker",
]
FLOAT_COLUMNS = ["band_gap", "volume", *STATS_COLUMNS]
INT_COLUMNS = ["pool_index", "n_sites", "spacegroup", "members_nonpositive", "n_members"]


@dataclass(frozen=True)
class ScoringContext:
    """Everything a chunk needs besides its candidates; scattered once to every Dask worker."""

    model: ModelSpec
    training: TrainingIndex | None = None
    max_sites: int = 20
    device: str | None = None
    batch_size: int = 64
    torch_threads: int | None = 1
    symprec: float | None = 0.1  # for the crystal system column; None skips it (half the CPU time of a chunk)
    isolate: bool = True  # parse and check each candidate in goectp.isolation's bounded worker


class Rejected(Exception):  # noqa: N818 - a control-flow signal, not an error of the program
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason

    def __reduce__(self):  # pickled whole: it comes back from the isolated worker
        return (Rejected, (self.code, self.reason))


def parse_candidate(rec: dict, max_sites: int | None = None):
    """The candidate's Structure, or :class:`Rejected` ('unparseable' / 'unknown_element' / 'too_large': the site
    count is checked on the text or dict before parsing)."""
    try:
        if rec.get("structure") is not None:
            sites = rec["structure"].get("sites") if isinstance(rec["structure"], dict) else None
            if max_sites is not None and isinstance(sites, list) and len(sites) > max_sites:
                raise Rejected("too_large", f"{len(sites)} sites > the limit of {max_sites} per cell")
            return structure_from_dict(rec["structure"], f"candidate {str(rec.get('id'))[:80]!r}")
        if rec.get("text") is not None:
            return structure_from_string(rec["text"], rec.get("fmt") or "cif", max_sites=max_sites)
    except Rejected:
        raise
    except StructureError as exc:
        if exc.code in ("too_large", "empty", "file_too_large"):
            raise Rejected("too_large" if exc.code != "empty" else "unparseable", str(exc)) from exc
        msg = str(exc)
        code = "unknown_element" if ("valid Element" in msg or "nrecognized element" in msg) else "unparseable"
        raise Rejected(code, f"could not parse the structure: {msg}") from exc
    except Exception as exc:
        msg = str(exc)
        code = "unknown_element" if ("valid Element" in msg or "nrecognized element" in msg) else "unparseable"
        raise Rejected(code, f"could not parse the structure: {msg}") from exc
    raise Rejected("unparseable", "record has neither a structure dict nor file text")


def check_structure(structure, max_sites: int) -> None:
    """Raise :class:`Rejected` with the validator's reason code (:func:`goectp.structures.validate_structure`, the
    one structure validator) for a structure the model cannot use."""
    try:
        validate_structure(structure, max_sites=max_sites)
    except StructureError as exc:
        raise Rejected(exc.code, str(exc)) from exc


def parse_and_check(rec: dict, max_sites: int):
    """(Structure, None), or (Structure, :class:`Rejected`) when the checks refuse it; :class:`Rejected` when it
    does not parse. Top-level: :func:`_parse_and_check_bounded` runs it in an isolated worker."""
    structure = parse_candidate(rec, max_sites)
    try:
        check_structure(structure, max_sites)
    except Rejected as rej:
        return structure, rej
    return structure, None


def _isolation_possible() -> bool:
    """Worker processes can be started here (not inside a daemonic process, e.g. a Dask worker's default)."""
    import multiprocessing

    return not multiprocessing.current_process().daemon


def _parse_and_check_bounded(rec: dict, context: ScoringContext):
    """:func:`parse_and_check` in :mod:`goectp.isolation`'s worker (memory and time limits): a structure that
    slips past the pre-checks and blows up is rejected alone (``out_of_memory``, ``timeout``, ``worker_died``)
    and the screen goes on. In-process where isolation is off or impossible (daemonic Dask workers)."""
    if not context.isolate or not _isolation_possible():
        return parse_and_check(rec, context.max_sites)
    from goectp.isolation import run_isolated

    name = f"candidate {str(rec.get('id'))[:80]!r}"
    try:
        return run_isolated(parse_and_check, rec, context.max_sites, name=name)
    except StructureError as exc:
        if exc.code in ("out_of_memory", "timeout", "worker_died"):
            raise Rejected(exc.code, str(exc)) from exc
        raise


def _crystal_system(structure, symprec: float | None) -> tuple[str | None, int | None]:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if not symprec:
        return None, None
    try:
        sga = SpacegroupAnalyzer(structure, symprec=symprec)
        return sga.get_crystal_system(), sga.get_space_group_number()
    except Exception:  # spglib fails on a few pathological cells; symmetry is informative only
        return None, None


def _base_row(rec: dict) -> dict:
    row = dict.fromkeys(PART_COLUMNS)
    for key in ("id", "pool_index", "source", "formula", "material_id", "band_gap"):
        row[key] = rec.get(key)
    return row


def _worker_name() -> str:
    """The Dask worker's address inside a Dask task, else ``host:pid``."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _configure_threads(threads: int | None) -> None:
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def warm_up(context: ScoringContext) -> str:
    """Load the ensemble into this worker's cache (and import everything a chunk needs); returns the device."""
    import goectp.graph  # noqa: F401

    _configure_threads(context.torch_threads)
    return str(next(cached_ensemble(context.model, context.device).parameters()).device)


def score_chunk(candidates: list[dict], context: ScoringContext) -> pd.DataFrame:
    """One row per candidate (columns :data:`PART_COLUMNS`), in input order."""
    from goectp.canonical import uses_canonical_cell
    from goectp.graph import build_crystal_graph, graph_structure

    _configure_threads(context.torch_threads)
    ensemble = cached_ensemble(context.model, context.device)
    device = str(next(ensemble.parameters()).device)
    k, symprec = ensemble.config.k_neighbors, (0.01 if ensemble.config.symmetrize else None)
    canonical = uses_canonical_cell(ensemble.config) and symprec is not None
    worker = _worker_name()
    rows, graphs, graph_rows, structures = [], [], [], []
    for rec in candidates:
        row = _base_row(rec)
        row["worker"], row["device"] = worker, device
        rows.append(row)
        try:
            if rec.get("reject_code"):
                raise Rejected(rec["reject_code"], rec.get("reject_reason") or rec["reject_code"])
            structure, refused = _parse_and_check_bounded(rec, context)
            row["n_sites"], row["volume"] = len(structure), float(structure.volume)
            row["formula"] = structure.composition.reduced_formula  # what was scored, whatever the pool says
            if refused is not None:
                raise refused
            if context.training is not None:
                why = context.training.match(
                    row["id"],
                    row["material_id"],
                    structure.composition.reduced_formula,
                    len(structure),
                    structure.volume,
                )
                if why:
                    row["status"], row["reason_code"], row["reason"] = "excluded", "in_training", why
                    continue
            try:
                graph = build_crystal_graph(structure, k=k, symprec=symprec, validate=False, canonical=canonical)
            except Exception as exc:
                raise Rejected("graph_error", f"could not build the crystal graph: {exc}") from exc
            row["crystal_system"], row["spacegroup"] = _crystal_system(structure, context.symprec)
        except Rejected as rej:
            row["status"], row["reason_code"], row["reason"] = "rejected", rej.code, rej.reason
            continue
        graphs.append(graph)
        graph_rows.append(row)
        structures.append(graph_structure(graph) if canonical else structure)  # node features: the graph's cell
    if graphs and getattr(ensemble.config, "node_features", None):
        graphs, graph_rows = _attach_node_features(graphs, graph_rows, structures, ensemble.config.node_features)
    if graphs:
        _predict_into(graphs, graph_rows, ensemble, context)
    return rows_to_frame(rows)


def _attach_node_features(graphs: list, rows: list[dict], structures: list, name: str) -> tuple[list, list]:
    """Pretrained node features (e.g. CHGNet) for a model that uses them; a structure whose features fail is
    rejected alone (``features_error``)."""
    from goectp.features import with_node_features

    try:
        return with_node_features(graphs, structures, name), rows
    except Exception:
        kept_graphs, kept_rows = [], []
        for graph, row, structure in zip(graphs, rows, structures):
            try:
                kept_graphs += with_node_features([graph], [structure], name)
                kept_rows.append(row)
            except Exception as exc:
                row["status"], row["reason_code"] = "rejected", "features_error"
                row["reason"] = f"could not compute {name} node features: {type(exc).__name__}: {exc}"
        return kept_graphs, kept_rows


def _predict_into(graphs: list, rows: list[dict], ensemble, context: ScoringContext) -> None:
    """Predict all graphs in batches (one pass per member: :func:`goectp.inference.run_model`); if a batch fails,
    retry one by one so only the culprit is rejected."""
    from goectp.inference import run_model

    calibration = ensemble.calibration  # calibrated σ (and OOD flags) when the ensemble ships calibration.json
    try:
        run = run_model(graphs, ensemble, device=context.device, batch_size=context.batch_size)
        preds, pooled = run.predictions, run.embeddings
        ok = list(range(len(graphs)))
    except Exception:
        ok, singles, embeds = [], [], []
        for i, g in enumerate(graphs):
            try:
                one = run_model([g], ensemble, device=context.device)
                singles.append(one.predictions[:, 0])
                embeds.append(one.embeddings[:, 0])
                ok.append(i)
            except Exception as exc:
                rows[i]["status"], rows[i]["reason_code"] = "rejected", "model_error"
                rows[i]["reason"] = f"model failed on this structure: {type(exc).__name__}: {exc}"
        if not ok:
            return
        preds, pooled = np.stack(singles, axis=1), np.stack(embeds, axis=1)
    stats = ensemble_statistics(preds, calibration=calibration)
    mean_c, std_c = tensor_components(stats["mean"]), tensor_components(stats["std"])
    flags = (
        calibration.ood([element_symbols(graphs[i].z.tolist()) for i in ok], stats, pooled)
        if calibration is not None
        else None
    )
    for j, i in enumerate(ok):
        row = rows[i]
        row["status"] = "scored"
        for key in ("eps_mean", "eps_mean_std", "anisotropy", "anisotropy_std"):
            row[key] = float(stats[key][j])
        row["eps_eig1"], row["eps_eig2"], row["eps_eig3"] = (float(v) for v in stats["eigenvalues"][j])
        for c, name in enumerate(COMPONENT_NAMES):
            row[f"eps_{name}"], row[f"std_{name}"] = float(mean_c[j, c]), float(std_c[j, c])
        row["nonpositive"] = bool(stats["nonpositive"][j])
        row["members_nonpositive"] = int(stats["members_nonpositive"][j])
        row["n_members"] = int(stats["n_members"][j])
        row["calibrated"] = calibration is not None
        if flags is not None:
            row["ood_flag"], row["ood_reason"] = flags[j]["flag"], "; ".join(flags[j]["reasons"])


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows → a DataFrame with the fixed column set and dtypes (so part files concatenate cleanly)."""
    frame = pd.DataFrame(rows, columns=PART_COLUMNS)
    return coerce_part_dtypes(frame)


def coerce_part_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    for col in FLOAT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in INT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in ("nonpositive", "ood_flag", "calibrated"):
        frame[col] = frame[col].astype("boolean")
    for col in set(PART_COLUMNS) - set(FLOAT_COLUMNS) - set(INT_COLUMNS) - {"nonpositive", "ood_flag", "calibrated"}:
        frame[col] = frame[col].astype("string")
    return frame
