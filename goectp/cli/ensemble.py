"""``goectp ensemble export | calibrate | combine``: the release path of a trained ensemble (:mod:`goectp.release`)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
The release path of a trained ensemble: export a training run with a model card, fit its calibrated σ, or
combine shipped ensembles into one.

examples:
  goectp ensemble export runs/mine --name mine --float16 --command "goectp train ... --out runs/mine"
  goectp ensemble calibrate --model default    # a shipped name, or a folder of split*.pt members
  goectp ensemble combine pretrained-bulk-modulus-chgnet fast --name both
  goectp ensemble share decomposed-bulk-modulus-layers2 --parts-from electronic
  goectp ensemble float16 fast electronic     # weight matrices stored as float16 (then re-calibrate)
"""
#: ``(name, help, description)`` of each subcommand.
SUBCOMMANDS = (
    (
        "export",
        "copy a run's best checkpoints into ASSETS/NAME with a model card (then calibrate it)",
        "Copy the best-validation checkpoints of a training run (RUN/split*/best.pt and metrics.json) into "
        "ASSETS/NAME/split*.pt with a model card, then fit calibration.json.",
    ),
    (
        "calibrate",
        "fit an ensemble's calibrated σ and OOD statistics (calibration.json, reliability.png, card section)",
        "Fit the calibrated σ of an ensemble on held-out sub-ensembles and store the OOD statistics in its "
        "calibration.json; re-run whenever an ensemble is re-exported. Member predictions are cached.",
    ),
    (
        "combine",
        "one ensemble from several shipped ones (members.json, no copies), with a card",
        "Write ASSETS/NAME/members.json listing the members of shipped ensembles (with their sha256) and a card "
        "comparing the combination with each family per split; then calibrate it.",
    ),
    (
        "share",
        "ship a sum family's ε∞ networks once: members name the identical member of an ε∞ ensemble",
        "Rewrite each sum member of FAMILY whose ε∞ part is bit-identical to a member of --parts-from so that it "
        "names that file (with its sha256) instead of holding a copy; weights, predictions and the calibration "
        "are unchanged. The members.json manifests and the screening summary that list the rewritten files get "
        "their new sha256.",
    ),
    (
        "float16",
        "store the weight matrices of ensembles as float16 (half the bytes; then re-calibrate)",
        "Rewrite every checkpoint of the given ensemble folders with its weight matrices (tensors of at least "
        "1,024 elements) stored as float16; small tensors keep their precision and compute keeps the model's. "
        "Predictions move by ~1e-3, so the fingerprint changes: re-fit each calibration (goectp ensemble "
        "calibrate) and redo what was computed from the predictions (a shipped screen). Sum references and "
        "members.json manifests get the new sha256.",
    ),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``ensemble`` and its subcommands."""
    p = sub.add_parser(
        "ensemble",
        help="export a training run as a shipped ensemble, calibrate its σ, or combine shipped ensembles",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="{export,calibrate,combine,share,float16}")
    export, calibrate, combine, share, float16 = (
        actions.add_parser(name, help=text, description=description) for name, text, description in SUBCOMMANDS
    )

    export.add_argument("run", type=Path, help="folder with split*/best.pt and split*/metrics.json")
    export.add_argument(
        "--name", default=None, help="folder name under --assets (default: the run folder's name; not an alias)"
    )
    export.add_argument("--command", default="", help="the command line that produced the run (for the card)")
    export.add_argument(
        "--float16", action="store_true", help="store the weight matrices as float16 (half the bytes; as `float16`)"
    )
    _card_options(export, "after the model section")
    export.set_defaults(func=cmd_export)

    calibrate.add_argument("--model", required=True, help="shipped model name or folder of *.pt members")
    calibrate.add_argument("--data", type=Path, default=None, help="dielectric JSON (default: the shared data file)")
    calibrate.add_argument("--cache", default="runs/calibration", help="prediction cache folder ('' for none)")
    calibrate.add_argument("--no-plot", action="store_true", help="no reliability diagram")
    calibrate.set_defaults(func=cmd_calibrate)

    combine.add_argument("families", nargs="+", help="shipped ensembles (names under assets/models) to combine")
    combine.add_argument("--name", required=True, help="folder name of the combined ensemble under --assets")
    _card_options(combine, "after the choice")
    combine.set_defaults(func=cmd_combine)

    share.add_argument("family", help="a shipped ensemble of sum members (e.g. decomposed-bulk-modulus-layers2)")
    share.add_argument("--parts-from", required=True, help="the shipped ε∞ ensemble that holds the same networks")
    share.add_argument("--assets", type=Path, default=Path("assets"), help="(default: %(default)s)")
    share.set_defaults(func=cmd_share)

    float16.add_argument("models", nargs="+", help="shipped ensembles (names under assets/models) or folders")
    float16.add_argument("--assets", type=Path, default=Path("assets"), help="(default: %(default)s)")
    float16.set_defaults(func=cmd_float16)


def _card_options(q: argparse.ArgumentParser, notes_where: str) -> None:
    """``--assets``, ``--no-calibrate`` and ``--notes`` (of ``export`` and ``combine``)."""
    q.add_argument("--assets", type=Path, default=Path("assets/models"), help="(default: %(default)s)")
    q.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip `goectp ensemble calibrate` (calibrated σ + OOD statistics: calibration.json)",
    )
    q.add_argument("--notes", type=Path, default=None, help=f"a Markdown file inserted {notes_where} in the card")


def cmd_export(args: argparse.Namespace) -> int:
    """Export, print the card and the median test MAE (and where the calibration went)."""
    from goectp.release import export_ensemble

    calibrate = not args.no_calibrate
    out, card, median = export_ensemble(
        args.run, args.name, args.assets, args.command, args.notes, calibrate=calibrate, float16=args.float16
    )
    print(card)
    print(f"median test MAE {median:.3f}")
    if not args.no_calibrate:
        print(f"calibrated: {out / 'calibration.json'}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Calibrate and print one coverage line per quantity."""
    from goectp.release import calibrate
    from goectp.release.calibrate import coverage_lines

    cal = calibrate(args.model, args.data, args.cache or None, plot=not args.no_plot)
    print("\n".join(coverage_lines(cal)))
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    """Combine, print the card, then calibrate (unless ``--no-calibrate``)."""
    from goectp.release import calibrate, combine_ensembles
    from goectp.release.calibrate import coverage_lines

    out, card = combine_ensembles(args.families, args.name, args.assets, args.notes)
    print(card)
    if not args.no_calibrate:
        print("\n".join(coverage_lines(calibrate(out))))
    return 0


def cmd_share(args: argparse.Namespace) -> int:
    """Share, refresh the manifests and the screening summary, print what changed and the bytes saved."""
    from goectp.registry import checkpoint_files
    from goectp.release import share_parts
    from goectp.release.share import refresh_manifests, refresh_screening_provenance

    before = {f.resolve(): f.stat().st_size for f in checkpoint_files(args.family, verify=False)}
    changed = share_parts(args.family, args.parts_from)
    for path in changed:
        print(f"{path}: {before[path] / 1e6:.2f} -> {path.stat().st_size / 1e6:.2f} MB")
    for manifest in refresh_manifests(args.assets / "models", changed):
        print(f"updated {manifest}")
    summary = args.assets / "screening" / "screening_summary.json"
    if summary.is_file() and refresh_screening_provenance(summary, changed):
        print(f"updated {summary}")
    saved = sum(before[p] - p.stat().st_size for p in changed)
    print(f"{len(changed)} members now share their ε∞ part; {saved / 1e6:.1f} MB saved")
    return 0


def cmd_float16(args: argparse.Namespace) -> int:
    """Convert, refresh the manifests, print the bytes saved and what must be re-fitted."""
    from goectp.registry import resolve_model_path
    from goectp.release.half import store_float16
    from goectp.release.share import refresh_manifests

    files = [f.resolve() for model in args.models for f in resolve_model_path(model).glob("*.pt")]
    before = {f: f.stat().st_size for f in files}
    changed = store_float16(args.models)
    for manifest in refresh_manifests(args.assets / "models", changed):
        print(f"updated {manifest}")
    saved = sum(before.get(path, 0) - path.stat().st_size for path in changed)
    print(f"{len(changed)} checkpoint files rewritten; {saved / 1e6:.1f} MB saved")
    if changed:
        print("the weights changed: re-fit each calibration (goectp ensemble calibrate --model NAME); redo screens")
    return 0
