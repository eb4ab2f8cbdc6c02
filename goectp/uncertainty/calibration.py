"""``calibration.json``: the :class:`Calibration` of an ensemble (σ model and OOD statistics), fitted, saved, loaded
with the model (see :mod:`goectp.uncertainty`)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from goectp.uncertainty.ood import RARE_THRESHOLD, embedding_distance
from goectp.uncertainty.sigma import calibrated_sigma, propagated_alpha_sigma, tau_hat

CALIBRATION_FILE = "calibration.json"
#: a calibration.json is a few kB; a larger file is refused unread (bounded memory)
MAX_CALIBRATION_BYTES = 2**20
CALIBRATION_VERSION = 1


@dataclass
class Calibration:
    """What ``calibration.json`` holds: the σ model per quantity and the OOD statistics."""

    quantities: dict[str, dict[str, Any]]
    element_counts: dict[str, int] = field(default_factory=dict)
    rare_threshold: int = RARE_THRESHOLD
    embedding: list[dict[str, Any]] = field(default_factory=list)  # per member: mean, std, p99
    disagreement_p99: float = float("inf")  # of raw σ(ε̄)/|ε̄| on the calibration points
    meta: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------------------------------------- σ
    def sigma(self, quantity: str, std_pop: np.ndarray, mean: np.ndarray, n_members: np.ndarray | int) -> np.ndarray:
        """Calibrated σ of ``tensor`` components / eigenvalues or ``eps_mean`` (α: see :meth:`apply`)."""
        return calibrated_sigma(self.quantities[quantity], std_pop, mean, n_members)

    def apply(self, stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calibrated ``std``, ``eps_mean_std``, ``anisotropy_std``, ``eigenvalues_std`` (raw kept as ``*_raw``)."""
        out = dict(stats)
        n = np.asarray(stats["n_members"])
        for key, q, mean in (
            ("std", "tensor", stats["mean"]),
            ("eigenvalues_std", "tensor", stats["eigenvalues"]),
            ("eps_mean_std", "eps_mean", stats["eps_mean"]),
        ):
            if key not in stats:
                continue
            nn_ = n.reshape(n.shape + (1,) * (np.ndim(mean) - 1))
            out[f"{key}_raw"] = stats[key]
            out[key] = self.sigma(q, stats[key], mean, nn_)
        if "anisotropy_std" in stats and "eigenvalues_std" in stats:
            out["anisotropy_std_raw"] = stats["anisotropy_std"]
            base = propagated_alpha_sigma(
                self.quantities["tensor"], stats["anisotropy"], stats["eigenvalues"], stats["eigenvalues_std"], n
            )
            out["anisotropy_std"] = float(self.quantities["anisotropy"]["k"]) * base
        out["calibrated"] = True
        return out

    # -------------------------------------------------------------------------------------------- OOD
    def embedding_score(self, pooled: np.ndarray) -> np.ndarray:
        """``pooled [M, n, D]`` → mean over members of distance / that member's training 99th percentile ``[n]``."""
        if not self.embedding:
            return np.zeros(pooled.shape[1])
        ratios = [embedding_distance(pooled[m], e) / e["p99"] for m, e in enumerate(self.embedding)]
        return np.mean(ratios, axis=0)

    def ood(
        self,
        elements: Sequence[Sequence[str]],
        stats: dict[str, np.ndarray] | None = None,
        pooled: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """Per structure ``{"flag": bool, "reasons": [str], "embedding_score": float|None}``."""
        n = len(elements)
        emb = self.embedding_score(pooled) if pooled is not None and self.embedding else None
        rel = None
        if stats is not None:
            raw = stats["eps_mean_std_raw"] if "eps_mean_std_raw" in stats else stats["eps_mean_std"]
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = tau_hat(raw, stats["n_members"]) / np.abs(stats["eps_mean"])
        out = []
        for i in range(n):
            reasons = []
            counts = {el: self.element_counts.get(el, 0) for el in elements[i]}
            unseen = sorted(el for el, c in counts.items() if c == 0)
            rare = sorted(f"{el} ({c})" for el, c in counts.items() if 0 < c < self.rare_threshold)
            if self.element_counts and unseen:
                reasons.append(f"element not in the training data: {', '.join(unseen)}")
            if self.element_counts and rare:
                reasons.append(f"element rare in the training data (records): {', '.join(rare)}")
            if emb is not None and emb[i] > 1.0:
                reasons.append(
                    f"unlike the training crystals: embedding distance {emb[i]:.2f}× the training 99th percentile"
                )
            if rel is not None and np.isfinite(self.disagreement_p99) and rel[i] > self.disagreement_p99:
                reasons.append(
                    f"members disagree beyond the calibrated range: σ(ε̄)/ε̄ = {rel[i]:.2f} > {self.disagreement_p99:.2f}"
                )
            out.append(
                {"flag": bool(reasons), "reasons": reasons, "embedding_score": None if emb is None else float(emb[i])}
            )
        return out

    # -------------------------------------------------------------------------------------------- I/O
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CALIBRATION_VERSION,
            "quantities": self.quantities,
            "element_counts": self.element_counts,
            "rare_threshold": self.rare_threshold,
            "embedding": self.embedding,
            "disagreement_p99": self.disagreement_p99,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], name: str = "calibration") -> Calibration:
        """A calibration from its JSON dict, every value checked: a ``ValueError`` naming ``name`` (the file) for
        a wrong version, a missing key, or a σ parameter that is not a finite positive number (NaN, 1e308, < 0)."""
        limit = 1e6  # no fitted scale, floor or factor comes near it; 1e308 would turn every σ into inf

        def number(value: Any, where: str, positive: bool = True, upper: float = limit) -> float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (positive and value == 0) or value > upper:
                need = "positive" if positive else "non-negative"
                raise ValueError(f"{name}: {where} = {value!r} is not a finite {need} number ≤ {upper:g}")
            return float(value)

        if not isinstance(d, dict):
            raise ValueError(f"{name}: not a calibration (a JSON {type(d).__name__}, not an object)")
        if d.get("version") != CALIBRATION_VERSION:
            raise ValueError(f"{name}: calibration version {d.get('version')!r} is not {CALIBRATION_VERSION}")
        quantities = d.get("quantities")
        if not isinstance(quantities, dict):
            raise ValueError(f"{name}: no 'quantities' object (the σ model per quantity)")
        for q, key in (("tensor", "s"), ("eps_mean", "s"), ("anisotropy", "k")):
            params = quantities.get(q)
            if not isinstance(params, dict) or key not in params:
                raise ValueError(f"{name}: quantities.{q} lacks its {key!r} (the σ model of {q})")
            number(params[key], f"quantities.{q}.{key}")
            for other in ("s", "c", "k"):
                if other != key and other in params:
                    number(params[other], f"quantities.{q}.{other}", positive=False)
        counts = d.get("element_counts", {})
        if not isinstance(counts, dict):
            raise ValueError(f"{name}: element_counts is not an object")
        for el, c in counts.items():
            number(c, f"element_counts.{el}", positive=False, upper=1e9)
        embedding = d.get("embedding", [])
        if not isinstance(embedding, list) or not all(isinstance(e, dict) for e in embedding):
            raise ValueError(f"{name}: embedding is not a list of per-member objects")
        for m, e in enumerate(embedding):
            number(e.get("p99"), f"embedding[{m}].p99")
            for key, positive in (("mean", False), ("std", True)):
                values = e.get(key)
                if not isinstance(values, list) or not values:
                    raise ValueError(f"{name}: embedding[{m}].{key} is not a list of numbers")
                for v in values:
                    ok = isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not positive)
                    if not ok:
                        raise ValueError(f"{name}: embedding[{m}].{key} holds {v!r}, not a finite number")
        p99 = d.get("disagreement_p99", float("inf"))
        if p99 is None or p99 != float("inf"):  # inf (the default): no disagreement flag
            number(p99, "disagreement_p99")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"{name}: meta is not an object")
        return cls(
            quantities=quantities,
            element_counts=counts,
            rare_threshold=int(number(d.get("rare_threshold", RARE_THRESHOLD), "rare_threshold", False, 1e9)),
            embedding=embedding,
            disagreement_p99=float(p99),
            meta=meta,
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """``calibration.json`` (or a folder's), checked by :meth:`from_dict`; every problem is a ``ValueError``
        naming the file."""
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_FILE
        try:
            if path.stat().st_size > MAX_CALIBRATION_BYTES:
                raise ValueError(f"{path.stat().st_size:,} bytes, more than a calibration holds")
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ValueError(f"{path}: not a readable calibration file ({type(exc).__name__}: {exc})"[:300]) from exc
        return cls.from_dict(data, name=str(path))


def ensemble_fingerprint(model: Any) -> str:
    """sha256 (16 hex) of the members' weights as float32 — the same for a float64 copy or another device."""
    h = hashlib.sha256()
    for member in getattr(model, "members", [model]):
        for name, tensor in sorted(member.state_dict().items()):
            h.update(name.encode())
            t = tensor.detach().cpu()
            h.update((t.float() if t.is_floating_point() else t).numpy().tobytes())
    return h.hexdigest()[:16]


def calibration_for(model: Any) -> Calibration | None:
    """The calibration of a loaded model: the ensemble's :attr:`~goectp.models.Ensemble.calibration`, which
    :func:`goectp.registry.load_model` reads from the folder's ``calibration.json``. ``None`` for a single network
    or an uncalibrated ensemble (σ stays the raw member spread)."""
    return getattr(model, "calibration", None) if hasattr(model, "members") else None


def attach_calibration(model: Any, calibration: Calibration | None) -> Any:
    """Set the calibration used for ``model`` (e.g. an ensemble assembled in memory)."""
    model.calibration = calibration
    return model


def folder_calibration(folder: Path, ensemble: Any) -> Calibration | None:
    """The ``calibration.json`` of an ensemble folder, when it was fitted on these very weights.

    A calibration whose recorded fingerprint (:func:`goectp.uncertainty.ensemble_fingerprint`) differs from the
    members' is stale (the weights were retrained or swapped): it is not used, with a warning naming the file.
    """
    import warnings

    file = folder / CALIBRATION_FILE
    if not file.is_file():
        return None
    calibration = Calibration.load(file)
    recorded = calibration.meta.get("fingerprint")
    if recorded is not None and recorded != ensemble_fingerprint(ensemble):
        warnings.warn(
            f"{file}: fitted on other weights than the members of {folder.name}; σ stays uncalibrated", stacklevel=2
        )
        return None
    return calibration
