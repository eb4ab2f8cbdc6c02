"""One complete screening run: score (resumably) → merge → rank → compare with DFT hits → write the tables.

Outputs in ``out_dir``:

- ``screening.parquet`` / ``.csv``: every scored candidate (ε̄, α, eigenvalues, mean and std tensors, scores,
  ranks, crystal system) with provenance columns (model names and sha256s, pool sha256, date, version, κ);
- ``top_high_k.*``, ``top_anisotropy.*``: the two top lists (with ``physics_top``, the high-κ list carries the
  physics stage's columns and ``rank_physics``); ``rejects.csv``: id, status, reason of every
  candidate not scored; ``reference_comparison.csv``; ``summary.json``; ``work/`` (resumable part files).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from goectp.csvsafe import write_csv
from goectp.device import default_device
from goectp.screening.engine import PassReport, ScreeningOptions, load_training, merge_parts, options_dict, score_pool
from goectp.screening.model_spec import load_model_spec
from goectp.screening.pool import open_pool
from goectp.screening.provenance import Provenance
from goectp.screening.ranking import Rankings, rank_candidates
from goectp.screening.reference import ReferenceComparison, compare_with_reference, load_reference_hits
from goectp.screening.store import ScreeningError

log = logging.getLogger(__name__)


@dataclass
class ScreeningRun:
    options: ScreeningOptions
    report: PassReport
    provenance: Provenance
    rankings: Rankings | None = None  # None when the pass was interrupted
    comparison: ReferenceComparison | None = None
    rescore: dict | None = None  # the funnel's second stage (see :func:`rescore_top`)
    physics: dict | None = None  # the physics stage (:mod:`goectp.screening.physics_stage`)
    summary: dict = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.report.interrupted


def warn_if_uncalibrated(model) -> bool:
    """Say up front when the ensemble has no calibration fitted on its weights: σ is then the raw member spread (too
    narrow, :mod:`goectp.uncertainty`) and there are no OOD flags. Returns whether it is calibrated."""
    calibrated = model.calibration is not None
    if not calibrated:
        log.warning(
            "%s has no calibration.json fitted on its weights: σ is the raw member spread and OOD flags are off "
            "(fit one with goectp ensemble calibrate)",
            model.origin,
        )
    return calibrated


def run_screening(opts: ScreeningOptions) -> ScreeningRun:
    """Run (or resume) a screening; see the module docstring for what is written.

    Fails fast, before anything is scored: a model file that is not a usable checkpoint
    (:class:`~goectp.checkpoint.CheckpointError`), or a device this machine lacks (local runs).
    """
    if opts.scheduler is None:  # remote workers may have a GPU the driver lacks
        default_device(opts.device)
    model = load_model_spec(opts.model)  # loads every member once (weights_only=True)
    warn_if_uncalibrated(model)
    pool = open_pool(opts.pool, max_sites=opts.max_sites)
    pool_sha = pool.sha256()
    training, training_sha = load_training(opts.exclude_training)
    provenance = Provenance.create(model.names, model.sha256s, pool.description, pool_sha, opts.kappa)
    manifest_extra = {"pool_sha256": pool_sha, "training_sha256": training_sha}
    first = replace(opts, stage=f"stage 1/2: {opts.model}") if opts.rescore_model is not None else opts
    report, work = score_pool(first, model=model, training=training, pool=pool, manifest_extra=manifest_extra)
    run = ScreeningRun(opts, report, provenance)
    if report.interrupted:
        log.warning("interrupted after %d chunks; rerun the same command to resume", report.chunks)
        return run
    if not report.expected_ids:
        raise ScreeningError(f"the pool {pool.description} holds no candidates: nothing to screen")
    table, n_dupes = merge_parts(work, report.expected_ids)
    if opts.rescore_model is not None and opts.rescore_top > 0:
        table, run.rescore = rescore_top(table, opts, pool, training)
    second = str(opts.rescore_model) if run.rescore is not None else None
    run.rankings = rank_candidates(table, opts.kappa, opts.top, opts.min_gap, opts.aniso_min_gap, list_from=second)
    if opts.physics_top > 0 and len(run.rankings.top_high_k):
        from goectp.screening.physics_stage import physics_rerank

        try:
            reranked, run.physics = physics_rerank(run.rankings.top_high_k, pool, opts.physics_top, opts.kappa)
            run.rankings = replace(run.rankings, top_high_k=reranked)
        except (FileNotFoundError, ImportError, ValueError) as exc:  # the lists of the learned stages still ship
            log.warning("physics stage skipped: %s", exc)
            run.physics = {"top": opts.physics_top, "error": str(exc)[:300]}
    if opts.reference_dir is not None and Path(opts.reference_dir).exists():
        run.comparison = compare_with_reference(
            run.rankings.results, run.rankings.rejects, load_reference_hits(opts.reference_dir)
        )
    run.summary = build_summary(run, n_dupes, training)
    run.paths = write_outputs(run, Path(opts.out_dir))
    return run


class SelectedPool:
    """The records of ``pool`` whose id is in ``ids`` (the candidates a funnel's second stage re-scores)."""

    def __init__(self, pool, ids: set[str]) -> None:
        self.pool, self.wanted = pool, set(ids)
        self.description = f"{len(self.wanted)} candidates of {pool.description}"

    def __iter__(self):
        return (rec for rec in self.pool if rec.get("id") in self.wanted)

    def ids(self) -> list[str]:
        return sorted(self.wanted)


def rescore_top(table: pd.DataFrame, opts: ScreeningOptions, pool, training) -> tuple[pd.DataFrame, dict]:
    """The funnel's second stage: re-score with ``opts.rescore_model`` the ``opts.rescore_top`` best candidates of
    each top list of the first stage, and put their rows in place of the first stage's (column ``scored_by``).

    Its part files live in ``out_dir/rescore/work`` (resumable like the first stage)."""
    first = rank_candidates(table, opts.kappa, opts.rescore_top, opts.min_gap, opts.aniso_min_gap)
    chosen = set(first.top_high_k["id"]) | set(first.top_anisotropy["id"])
    second = replace(
        opts,
        model=opts.rescore_model,
        out_dir=Path(opts.out_dir) / "rescore",
        limit=None,
        rescore_model=None,
        rescore_top=0,
        stage=f"stage 2/2: {opts.rescore_model} on the top {opts.rescore_top}",
    )
    model = load_model_spec(opts.rescore_model)
    log.info("stage 2: %s re-scores %d candidates", opts.rescore_model, len(chosen))
    report, work = score_pool(second, model=model, training=training, pool=SelectedPool(pool, chosen))
    rescored, _ = merge_parts(work, report.expected_ids)
    order = {cid: i for i, cid in enumerate(table["id"])}
    kept = table[~table["id"].isin(set(rescored["id"]))].assign(scored_by=str(opts.model))
    out = pd.concat([kept, rescored.assign(scored_by=str(opts.rescore_model))], ignore_index=True)
    out = out.assign(_order=out["id"].map(order)).sort_values("_order").drop(columns="_order")
    out = out.reset_index(drop=True)
    info = {
        "model": str(opts.rescore_model),
        "top": opts.rescore_top,
        "n_rescored": int((out["scored_by"] == str(opts.rescore_model)).sum()),
        "seconds": round(report.seconds, 3),
        "model_sha256": list(model.sha256s),
    }
    return out, info


def build_summary(run: ScreeningRun, n_duplicate_rows: int, training) -> dict:
    rk, rep = run.rankings, run.report
    reasons = rk.rejects.groupby(["status", "reason_code"]).size() if len(rk.rejects) else pd.Series(dtype=int)
    summary = {
        "provenance": run.provenance.as_dict(),
        "options": options_dict(run.options),
        "n_candidates": len(rep.expected_ids),
        "n_scored": len(rk.results),
        "n_not_scored": {f"{s}:{c}": int(n) for (s, c), n in reasons.items()},
        "n_skipped_already_done": rep.skipped_done,
        "n_processed_this_run": rep.processed,
        "seconds_this_run": round(rep.seconds, 3),
        "startup_seconds_this_run": round(rep.startup_seconds, 3),
        "structures_per_s_this_run": None if math.isnan(rep.structures_per_s) else round(rep.structures_per_s, 2),
        "duplicate_rows_dropped_in_merge": n_duplicate_rows,
        "training_records": len(training) if training is not None else 0,
        "high_k_list": {
            "size": len(rk.top_high_k),
            "min_gap_eV": run.options.min_gap,
            "scored_with_unknown_gap_excluded": rk.unknown_gap_excluded,
        },
        "anisotropy_list": {
            "size": len(rk.top_anisotropy),
            "aniso_min_gap_eV": run.options.aniso_min_gap,
            "scored_with_nonpositive_tensor": int(
                (~pd.Series(rk.results["score_aniso"].map(math.isfinite), dtype=bool)).sum()
            ),
        },
    }
    if run.rescore is not None:
        summary["rescore"] = run.rescore
    if run.physics is not None:
        summary["physics"] = run.physics
    if run.comparison is not None:
        c = run.comparison
        summary["reference"] = {"n_reference": c.n_reference, "n_in_pool": c.n_in_pool, "n_scored": c.n_scored}
    return summary


def write_outputs(run: ScreeningRun, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rk, stamp = run.rankings, run.provenance.stamp
    paths: dict[str, Path] = {}
    for name, frame in (
        ("screening", rk.results),
        ("top_high_k", rk.top_high_k),
        ("top_anisotropy", rk.top_anisotropy),
    ):
        stamped = stamp(frame)
        stamped.to_parquet(out_dir / f"{name}.parquet", index=False)
        write_csv(stamped, out_dir / f"{name}.csv", index=False)
        paths[name] = out_dir / f"{name}.parquet"
    write_csv(rk.rejects, out_dir / "rejects.csv", index=False)
    paths["rejects"] = out_dir / "rejects.csv"
    if run.comparison is not None:
        write_csv(run.comparison.table, out_dir / "reference_comparison.csv", index=False)
        paths["reference_comparison"] = out_dir / "reference_comparison.csv"
    (out_dir / "summary.json").write_text(json.dumps(run.summary, indent=2, default=str))
    paths["summary"] = out_dir / "summary.json"
    return paths
