"""ScreeningData: the screening results the explorer's map shows, read from ``assets/screening/``.

``screening_results.csv`` (candidates with the ensemble's ε̄, α and their std; ids restored from the CSV
neutralisation of :mod:`goectp.csvsafe`, so that they match the structures'), ``training_set.csv`` (DFT values of
the training data), ``top_structures.json.gz`` (the structures of the listed candidates; the shared candidate
pool is the fallback) and the physics columns of ``top_high_k.csv`` (``goectp screen --physics-top N``). No Panel:
the view is :class:`explorer.screening.ScreeningMap`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.paths import CANDIDATES_FILE, data_dir, screening_dir
from explorer.paths import SCREENING_RESULTS_FILE as RESULTS_FILE
from explorer.paths import SCREENING_STRUCTURES_FILE as STRUCTURES_FILE
from explorer.paths import SCREENING_TOP_HIGH_K_FILE as TOP_HIGH_K_FILE
from explorer.paths import SCREENING_TRAINING_FILE as TRAINING_FILE
from goectp.csvsafe import restore_frame
from goectp.data.dielectric import MAX_DATASET_BYTES, load_json_file

RESULT_COLUMNS = (
    "id",
    "formula",
    "source",
    "band_gap",
    "n_sites",
    "eps_mean",
    "eps_mean_std",
    "anisotropy",
    "anisotropy_std",
    "score",
)
TRAINING_COLUMNS = ("id", "formula", "band_gap", "eps_mean", "anisotropy", "crystal_system")
TABLE_COLUMNS = list(RESULT_COLUMNS)  # the table shows every required column, in that order
SUMMARY_FILE = "screening_summary.json"
#: Shown too when `goectp screen` wrote them.
OPTIONAL_COLUMNS = [
    "score_aniso",
    "crystal_system",
    "spacegroup",
    "material_id",
    "has_structure",
    "ood_flag",
    "ood_reason",
    "eps_mean_physics",
    "physics_used",
]
#: The high-κ list's columns that join the results by id (``goectp screen --physics-top N``).
PHYSICS_COLUMNS = ("eps_mean_physics", "physics_used")
#: Band-gap classes: a known metal (gap == 0: a static ε has no meaning), an insulator, or a gap nobody computed.
GAP_INSULATOR, GAP_METAL, GAP_UNKNOWN = "insulator (gap > 0)", "metal (gap = 0)", "unknown gap"
#: Largest structures file read, once decompressed (the shared pool is 24 MB): a small gzip bomb is refused.
MAX_JSON_BYTES = MAX_DATASET_BYTES
UNKNOWN_GAP_X = -0.4  # where candidates with an unknown gap are drawn (left of the axis origin, own marker)


def gap_class(band_gap: pd.Series) -> pd.Series:
    """``GAP_METAL`` for gap == 0, ``GAP_UNKNOWN`` for null, else ``GAP_INSULATOR``."""
    gap = pd.to_numeric(band_gap, errors="coerce")
    out = pd.Series(GAP_INSULATOR, index=band_gap.index, dtype=object)
    out[gap.isna()] = GAP_UNKNOWN
    out[gap <= 0] = GAP_METAL
    return out


def pareto_front(gap: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated in (gap, ε̄) — no other point has both a larger gap and a larger ε̄ —
    sorted by gap (the ε̄–E_g trade-off curve of high-κ dielectrics)."""
    gap, eps = np.asarray(gap, float), np.asarray(eps, float)
    ok = np.flatnonzero(np.isfinite(gap) & np.isfinite(eps))
    order = ok[np.lexsort((-eps[ok], -gap[ok]))]  # largest gap first, then largest ε̄
    front, best = [], -np.inf
    for i in order:
        if eps[i] > best:
            front.append(i)
            best = eps[i]
    return np.array(sorted(front, key=lambda i: gap[i]), dtype=int)


class ScreeningData:
    """The screening files, read lazily and kept; ``problem`` says what is missing or malformed."""

    def __init__(self, directory: str | Path | None = None, pool_dir: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else screening_dir()
        self.pool_dir = Path(pool_dir) if pool_dir else data_dir()
        self._results: pd.DataFrame | None = None
        self._training: pd.DataFrame | None = None
        self._structures: dict[str, dict] | None = None
        self._pool: dict[str, dict] | None = None
        self.problem = ""
        #: why the training-set overlay is missing ("" when it is shown or there is none)
        self.training_problem = ""
        #: why the high-κ list's physics columns are missing ("" when shown or not screened with physics)
        self.physics_problem = ""
        self._read()

    def _read(self) -> None:
        path = self.directory / RESULTS_FILE
        if not path.is_file():
            self.problem = (
                f"No screening results found ({path} is missing). They are produced by "
                "`goectp screen` and committed to assets/screening/."
            )
            return
        try:
            results = restore_frame(pd.read_csv(path, dtype={"id": str}))  # ids as goectp screen got them
        except Exception as exc:
            self.problem = f"could not read {path.name}: {type(exc).__name__}: {exc}"
            return
        missing = [c for c in RESULT_COLUMNS if c not in results.columns]
        if missing:
            self.problem = f"{path.name} lacks the columns {missing}"
            return
        self._results = self._with_physics(results).reset_index(drop=True)
        tpath = self.directory / TRAINING_FILE
        if tpath.is_file():
            try:
                training = restore_frame(pd.read_csv(tpath, dtype={"id": str}))
            except Exception as exc:  # the maps work without the training-set overlay
                self.training_problem = f"could not read {tpath.name}: {type(exc).__name__}: {exc}"[:300]
                return
            if all(c in training.columns for c in ("band_gap", "eps_mean", "anisotropy")):
                self._training = training

    def _with_physics(self, results: pd.DataFrame) -> pd.DataFrame:
        """``results`` with the high-κ list's physics columns (ε̄ with the physics term, whether it was used) on the
        rows that list carries; unchanged when there is no such list or it cannot be read (said in ``problem``-free
        ``physics_problem``: the map works without them)."""
        self.physics_problem = ""
        path = self.directory / TOP_HIGH_K_FILE
        if not path.is_file():
            return results
        try:
            top = restore_frame(pd.read_csv(path, dtype={"id": str}))
        except Exception as exc:
            self.physics_problem = f"could not read {path.name}: {type(exc).__name__}: {exc}"[:300]
            return results
        if not all(c in top.columns for c in ("id", *PHYSICS_COLUMNS)):
            return results  # screened without the physics stage
        physics = top[["id", *PHYSICS_COLUMNS]].drop_duplicates("id")
        physics["eps_mean_physics"] = pd.to_numeric(physics["eps_mean_physics"], errors="coerce")
        return results.drop(columns=[c for c in PHYSICS_COLUMNS if c in results.columns]).merge(
            physics, on="id", how="left"
        )

    @property
    def available(self) -> bool:
        return self._results is not None

    @cached_property
    def provenance(self) -> dict:
        """The ``provenance`` block of screening_summary.json (model checkpoints' sha256, pool, date), or {}."""
        path = self.directory / SUMMARY_FILE
        try:
            return dict(json.loads(path.read_text()).get("provenance", {})) if path.is_file() else {}
        except (ValueError, OSError):
            return {}

    def model_label(self) -> str:
        """The shipped model whose checkpoints produced these results (matched by sha256), or a short description."""
        return self._model_label

    @cached_property
    def _screened_sha256(self) -> set[str]:
        """The sha256 of the checkpoints that produced these results (from the provenance)."""
        return set(filter(None, str(self.provenance.get("model_sha256", "")).split(";")))

    @cached_property
    def model_name(self) -> str | None:
        """The shipped name (``default`` before its target) whose checkpoints produced these results (matched by
        sha256; hashed once per ScreeningData), or None."""
        from goectp.api import available_models
        from goectp.data.paths import sha256_file
        from goectp.registry import checkpoint_files, model_aliases

        wanted = self._screened_sha256
        if not wanted:
            return None
        aliases = model_aliases()
        for name in sorted(available_models(), key=lambda n: n not in aliases):
            files = checkpoint_files(name, verify=False)  # hashed below anyway
            if len(files) == len(wanted) and {sha256_file(f) for f in files} == wanted:
                return name
        return None

    @cached_property
    def _model_label(self) -> str:
        from goectp.registry import model_aliases

        name = self.model_name
        if name is not None:
            aliases = model_aliases()
            return f"the `{name}` ensemble" + (f" (`{aliases[name]}`)" if name in aliases else "")
        n = len(self._screened_sha256)
        if not n:
            return "an unrecorded model"
        return f"a model not shipped here ({n} checkpoint{'s' * (n != 1)})"

    def caption(self) -> str:
        when = str(self.provenance.get("screened_on", ""))[:10]
        return (
            f"Screened with {self.model_label()}{f' on {when}' if when else ''}; the model menu does not change "
            "these results (`goectp screen --model NAME --export-assets` recomputes them)."
        )

    @property
    def results(self) -> pd.DataFrame:
        return self._results if self._results is not None else pd.DataFrame(columns=list(RESULT_COLUMNS))

    @property
    def training(self) -> pd.DataFrame:
        return self._training if self._training is not None else pd.DataFrame(columns=list(TRAINING_COLUMNS))

    def structure(self, key: str):
        """Structure of candidate ``key`` from top_structures.json.gz, else from the shared pool; None if absent."""
        from goectp.structures import structure_from_dict

        if self._structures is None:
            path = self.directory / STRUCTURES_FILE
            self._structures = {}
            if path.is_file():
                self._structures = _read_json_object(path, lambda data: data)
        if key in self._structures:
            return structure_from_dict(self._structures[key], f"candidate {key[:80]!r}")
        if self.pool_dir is not None and (self.pool_dir / CANDIDATES_FILE).is_file():
            if self._pool is None:
                self._pool = _read_json_object(
                    self.pool_dir / CANDIDATES_FILE, lambda data: {str(c["id"]): c["structure"] for c in data}
                )
            if key in self._pool:
                return structure_from_dict(self._pool[key], f"candidate {key[:80]!r}")
        return None


def _read_json_object(path: Path, shape) -> dict:
    """``shape(json of the gzipped file at path)``; a :class:`ValueError` naming the file for any problem (read
    within the library's size limit once decompressed: a small gzip bomb never fills the server's memory)."""
    try:
        out = shape(load_json_file(path, "JSON(.gz)", MAX_JSON_BYTES))
    except Exception as exc:  # too large, not gzip, not JSON, or not the expected layout
        raise ValueError(f"could not read {path.name}: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(out, dict):
        raise ValueError(f"could not read {path.name}: expected an object keyed by candidate id")
    return out
