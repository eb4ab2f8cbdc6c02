"""``goectp screen``: virtual screening of a candidate pool with the trained ensemble.

``add_parser(subparsers)`` registers the subcommand on the main CLI; ``python -m goectp.screening`` takes the same
options directly. Example (the full shared pool, results in runs/screening, explorer files in assets/screening)::

    goectp screen --export-assets
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from goectp.data.paths import data_dir

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130
#: ``goectp screen`` without ``--model``: (first-stage model, re-scoring model, candidates re-scored per list)
FUNNEL = ("fast", "default", 200)
DESCRIPTION = """\
Screen a pool of crystal structures with the trained ensemble: mean and std of the predicted dielectric tensor,
eps_mean, anisotropy = lambda_max/lambda_min, acquisition scores mean + kappa*std, and the top lists for high k
(band gap > --min-gap) and anisotropy, excluding the training data. Runs on Dask (local cluster by default) and
resumes after an interruption when the same command is run again.

Without --model, the screen is a funnel: `fast` ranks the whole pool and `default` re-scores the 200 best
candidates of each list (on the shared pool this recalled 1.00 / 0.95 of the full default screen's high-k /
anisotropy top-60 lists in about 1.18x fast's time; BENCHMARKS.md "Screening funnel"). Give --model default for
the full single-stage screen.

examples:
  goectp screen --export-assets    # shared pool -> runs/screening, explorer files -> assets/screening
  goectp screen --limit 500 --no-dask    # a quick look, single process
  goectp screen --pool my_cifs/ --scheduler tcp://head:8786
"""


def _optional_path(text: str) -> Path | None:
    return None if text.lower() in {"", "none", "no", "off"} else Path(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``screen`` options (shared by ``goectp screen`` and ``python -m goectp.screening``)."""
    d = data_dir(must_exist=False)
    g = p.add_argument_group("input")
    g.add_argument(
        "--pool",
        default=str(d / "screening_candidates.json.gz"),
        help="candidate JSON(.gz) file, folder or file of CIF/POSCAR/extxyz, or 'mp' / 'mp:<chemsys>' "
        "for a Materials Project query (needs MP_API_KEY) (default: %(default)s)",
    )
    g.add_argument(
        "--model",
        default=None,
        help="shipped model name, checkpoint file, or folder of member checkpoints (default: the funnel "
        f"{FUNNEL[0]} -> {FUNNEL[1]} on the top {FUNNEL[2]}; a --model given scores every candidate with it)",
    )
    g.add_argument(
        "--exclude-training",
        type=_optional_path,
        default=d / "mp_dielectric_open.json.gz",
        help="training dataset whose records are excluded (by id/material_id, and by reduced formula + "
        "number of sites + volume within 1%%); 'none' to disable (default: %(default)s)",
    )
    g.add_argument(
        "--reference",
        type=_optional_path,
        default=d / "reference",
        help="folder of DFT-validated hits (CSV) to compare with; 'none' to skip (default: %(default)s)",
    )
    g.add_argument("--limit", type=int, default=None, help="screen only the first N candidates (quick runs)")
    s = p.add_argument_group("ranking")
    s.add_argument(
        "--kappa",
        type=float,
        default=1.0,
        help="acquisition score = mean + kappa * ensemble std, for eps_mean and anisotropy (default: %(default)s)",
    )
    s.add_argument("--max-sites", type=int, default=20, help="reject cells with more atoms (default: %(default)s)")
    s.add_argument(
        "--min-gap",
        type=float,
        default=1.8,
        help="band gap (eV) above which a candidate may enter the high-k list; unknown gaps are "
        "excluded from that list (default: %(default)s)",
    )
    s.add_argument(
        "--aniso-min-gap",
        type=float,
        default=0.5,
        help="the anisotropy list keeps only candidates with a known gap above this (insulators); "
        "unknown gaps are left out; negative disables (default: %(default)s)",
    )
    s.add_argument("--top", type=int, default=60, help="length of the top lists (default: %(default)s)")
    s.add_argument(
        "--rescore-model",
        default=None,
        help="a funnel: --model ranks the whole pool, then this model re-scores the --rescore-top best candidates of"
        " each list and the lists are drawn from its scores (e.g. --model fast --rescore-model default)",
    )
    s.add_argument(
        "--rescore-top",
        type=int,
        default=None,
        help=f"candidates of each list the --rescore-model re-scores (>= --top; default {FUNNEL[2]})",
    )
    s.add_argument(
        "--physics-top",
        type=int,
        default=0,
        metavar="N",
        help="re-rank the N best of the high-k list with the physics term (the shipped 'physics' model: Born charges"
        " and SevenNet force constants, seconds per candidate, cached) (default: off)",
    )
    e = p.add_argument_group("execution")
    e.add_argument(
        "--out",
        default="runs/screening",
        help="output folder; its work/ subfolder makes runs resumable (default: %(default)s)",
    )
    e.add_argument("--workers", type=int, default=2, help="local Dask workers (default: %(default)s)")
    e.add_argument(
        "--scheduler",
        default=None,
        help="address of a running Dask scheduler, e.g. tcp://host:8786; its workers need goectp "
        "installed (checkpoints and structures are shipped to them) (default: start a LocalCluster)",
    )
    e.add_argument("--chunk-size", type=int, default=256, help="structures per task (default: %(default)s)")
    e.add_argument("--no-dask", action="store_true", help="score in this process, without Dask")
    e.add_argument(
        "--thread-workers",
        action="store_true",
        help="LocalCluster workers as threads of this process instead of separate processes",
    )
    e.add_argument("--device", default=None, help="torch device for the model (default: CUDA when available)")
    e.add_argument("--batch-size", type=int, default=64, help="graphs per forward pass (default: %(default)s)")
    e.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads per worker; parallelism comes from workers (default: %(default)s)",
    )
    e.add_argument(
        "--symprec",
        type=float,
        default=0.1,
        help="spglib tolerance for the crystal_system column; 0 skips it (faster) (default: %(default)s)",
    )
    e.add_argument("--fresh", action="store_true", help="discard the results of earlier runs in --out/work")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--stop-after-chunks", type=int, default=None, help=argparse.SUPPRESS)
    o = p.add_argument_group("explorer")
    o.add_argument(
        "--export-assets",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also write the explorer's small files (default DIR: assets/screening)",
    )


def add_parser(subparsers) -> None:
    """Register ``screen`` on the main CLI's subparsers."""
    p = subparsers.add_parser(
        "screen",
        help="virtual screening of a candidate pool (high-k and anisotropy lists)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run_from_args)


def options_from_args(args: argparse.Namespace):
    from goectp.screening.engine import ScreeningOptions

    rescore_model = args.rescore_model or (FUNNEL[1] if args.model is None else None)
    return ScreeningOptions(
        pool=args.pool,
        model=args.model or FUNNEL[0],
        out_dir=args.out,
        kappa=args.kappa,
        max_sites=args.max_sites,
        min_gap=args.min_gap,
        aniso_min_gap=args.aniso_min_gap,
        top=args.top,
        workers=args.workers,
        scheduler=args.scheduler,
        chunk_size=args.chunk_size,
        limit=args.limit,
        use_dask=not args.no_dask,
        processes=not args.thread_workers,
        exclude_training=args.exclude_training,
        reference_dir=args.reference,
        device=args.device,
        batch_size=args.batch_size,
        torch_threads=args.torch_threads,
        symprec=args.symprec or None,
        progress=not args.no_progress,
        fresh=args.fresh,
        stop_after_chunks=args.stop_after_chunks,
        rescore_model=rescore_model,
        rescore_top=(max(FUNNEL[2], args.top) if args.rescore_top is None else args.rescore_top)
        if rescore_model
        else 0,
        physics_top=args.physics_top,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the ``screen`` subcommand; returns the exit code (0 ok, 1 error, 130 interrupted)."""
    from goectp.screening.pool import PoolError
    from goectp.screening.run import run_screening
    from goectp.screening.store import ScreeningError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("goectp").setLevel(logging.INFO)
    if not args.no_dask:
        import distributed  # noqa: F401 - configures its loggers on import; keep only its warnings

        logging.getLogger("distributed").setLevel(logging.WARNING)
    try:
        opts = options_from_args(args)
        if opts.exclude_training is not None and not Path(opts.exclude_training).exists():
            print(
                f"error: training data {opts.exclude_training} not found; pass --exclude-training PATH or "
                "--exclude-training none",
                file=sys.stderr,
            )
            return EXIT_ERROR
        run = run_screening(opts)
        if run.interrupted:
            print(f"stopped after {run.report.chunks} chunks; rerun the same command to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(format_report(run))
        if args.export_assets is not None:
            from goectp.api import assets_dir
            from goectp.screening.export import export_assets
            from goectp.screening.pool import open_pool

            target = Path(args.export_assets) if args.export_assets else assets_dir() / "screening"
            paths = export_assets(
                run, open_pool(opts.pool, max_sites=opts.max_sites), target, training_path=opts.exclude_training
            )
            print("explorer files:\n" + "\n".join(f"  {p} ({p.stat().st_size:,} bytes)" for p in paths.values()))
        return EXIT_OK
    except KeyboardInterrupt:
        print("\ninterrupted: finished chunks are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ScreeningError, PoolError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def format_report(run, n_show: int = 10) -> str:
    """A short human summary of a finished run."""
    s, rk = run.summary, run.rankings
    lines = [
        f"screened {s['n_candidates']} candidates: {s['n_scored']} scored, "
        f"{s['n_candidates'] - s['n_scored']} not scored {s['n_not_scored']}",
        f"this run: {s['n_processed_this_run']} in {s['seconds_this_run']} s "
        f"({s['structures_per_s_this_run']} structures/s), {s['n_skipped_already_done']} already done",
        f"high-k list: {len(rk.top_high_k)} (band gap > {run.options.min_gap} eV; "
        f"{rk.unknown_gap_excluded} scored candidates with unknown gap not eligible)",
        f"anisotropy list: {len(rk.top_anisotropy)}",
    ]
    if "calibrated" in rk.results.columns and len(rk.results):
        calibrated = rk.results["calibrated"].fillna(False).astype(bool)
        lines.append(
            "σ: calibrated (the ensemble's calibration.json)"
            if calibrated.all()
            else f"σ: the raw member spread for {int((~calibrated).sum())} candidates (no calibration.json matched)"
        )
    cols = ["rank", "id", "formula", "band_gap", "eps_mean", "eps_mean_std", "anisotropy", "anisotropy_std"]
    if run.physics is not None and "error" in run.physics:
        lines.append(f"physics stage skipped: {run.physics['error']}")
    elif run.physics is not None:
        p = run.physics
        lines.append(
            f"physics stage: the top {p['top']} of the high-k list re-ranked with the physics term ({p['n_used']} used;"
            f" {p['seconds_per_candidate']} s per candidate)"
        )
    for title, frame in (("top high-k", rk.top_high_k), ("top anisotropy", rk.top_anisotropy)):
        if len(frame):
            extra = ("ood_flag", "eps_mean_physics", "rank_physics") if title == "top high-k" else ("ood_flag",)
            shown = cols + [c for c in extra if c in frame.columns]  # σ: calibrated when the model ships one
            lines += [f"{title}:", frame[shown].head(n_show).to_string(index=False, float_format="%.3g")]
    if run.comparison is not None:
        lines.append(run.comparison.summary())
    lines.append("outputs: " + ", ".join(str(p) for p in run.paths.values()))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m goectp.screening", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(p)
    p.set_defaults(func=run_from_args)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["screen"]:  # accept `python -m goectp.screening screen ...` too
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    return args.func(args)
