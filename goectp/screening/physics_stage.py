"""The physics stage of a screen: the top of the high-κ list re-ranked with the physics term.

The first stage (or the funnel) ranks the pool by the learned model's ε̄. Large ε comes from soft polar modes, which
the network under-predicts (docs/physics.md), so the ``physics_top`` best candidates of the high-κ list get the
shipped ``physics`` model (:class:`goectp.physics.model.PhysicsModel`: predicted Born charges, force constants
of the SevenNet checkpoint ``physics.json`` names, the rule chosen on validation) and the list is re-ranked by
the corrected score ``ε̄_phys + κ·k·σ`` (σ the default's, k the physics model's factor for crystals with the term or
left without it by unstable modes: its ``sigma_scale``). Candidates beyond ``physics_top`` keep their order below.
The candidates are corrected one after the other in this process (two Dask worker processes were twice as slow on
two cores: ``benchmarks/speed/bench_physics_stage_workers.py``).

The learned ε of each candidate is the screen's own (its table's tensor columns): the stage runs only the ε∞ model
and the physics term. Cost: seconds per candidate (force constants, cached per crystal), stated in the summary; a
candidate whose physics term is not usable (cell too large; unstable modes, unless the model's ``keep_unstable`` is
true, when the ``gated`` rule sums the stable ones and says so; the shipped model keeps it false) gets the rule's value
without it (for ``gated``: the learned ε̄ times its size factor)
and says why; one whose term fails keeps its learned ε̄.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from goectp.screening.worker import Rejected, parse_candidate

log = logging.getLogger(__name__)

#: columns the stage adds to the high-κ list
PHYSICS_COLUMNS = ["eps_mean_physics", "physics_used", "physics_note", "score_physics", "rank_physics"]


#: the screen table's columns of the (symmetric) mean tensor
TENSOR_COLUMNS = ["eps_11", "eps_12", "eps_13", "eps_22", "eps_23", "eps_33"]


def table_tensors(table: pd.DataFrame) -> np.ndarray:
    """``[n, 3, 3]`` mean tensors from a screen table's :data:`TENSOR_COLUMNS`."""
    xx, xy, xz, yy, yz, zz = (table[c].to_numpy(float) for c in TENSOR_COLUMNS)
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], 1)


def correct_candidate(
    model: Any, record: dict | None, tensor: np.ndarray, forces: Any = None
) -> tuple[float | None, bool, str | None, float]:
    """``(ε̄ with the physics term, whether the term was used, a note, the factor on its σ)`` for one pool ``record``
    whose learned mean tensor is ``tensor [3, 3]``; ``(None, False, why, 1.0)`` when its term fails (it then keeps
    its learned ε̄ and σ)."""
    try:
        if record is None:
            raise KeyError("not in the pool")
        rec = model.correct([parse_candidate(record)], tensor[None], forces=forces)[0]  # the screen's ε, not run again
        ok, note, value = rec["physics_used"], rec["physics_skipped"], rec["eps_physics_mean"]
        unstable = (rec.get("physics") or {}).get("unstable_modes", 0)
        if ok and unstable:  # kept under keep_unstable (its stable modes summed): say so, a relaxation is due
            note = f"{unstable} unstable mode(s) at this geometry: the stable ones summed"
        return float(value), bool(ok), note, float(rec.get("sigma_factor", 1.0))
    except (KeyError, Rejected, ValueError, ArithmeticError, RuntimeError) as exc:  # one candidate, not the list
        return None, False, f"physics term failed: {str(exc)[:200]}", 1.0


def physics_rerank(
    top_high_k: pd.DataFrame, pool, n: int, kappa: float, model: Any = None, forces: Any = None
) -> tuple[pd.DataFrame, dict]:
    """``top_high_k`` with :data:`PHYSICS_COLUMNS`, its first ``n`` rows re-ordered by ``score_physics``; and a
    summary (``top``, ``n_used``, ``seconds``, ``seconds_per_candidate``). ``model`` (default: the shipped
    ``physics``) and ``forces`` (default: its force field) are for tests and other physics models."""
    from goectp.physics.model import PhysicsModel

    start = time.perf_counter()
    model = model if model is not None else PhysicsModel.load()
    head = top_high_k.head(n).copy()
    wanted = set(head["id"])
    records = {rec["id"]: rec for rec in pool if rec.get("id") in wanted}
    items = [(records.get(cid), tensor) for cid, tensor in zip(head["id"], table_tensors(head))]
    corrected = [correct_candidate(model, record, tensor, forces) for record, tensor in items]
    values = [float(eps) if value is None else value for (value, *_), eps in zip(corrected, head["eps_mean"])]
    used = [ok for _, ok, _, _ in corrected]
    notes = [note for _, _, note, _ in corrected]
    head["eps_mean_physics"] = values
    head["physics_used"] = used
    head["physics_note"] = notes
    sigma_factors = np.array([k for *_, k in corrected])  # the physics model's σ (its sigma_scale)
    head["score_physics"] = np.asarray(values) + kappa * sigma_factors * head["eps_mean_std"].to_numpy(float)
    head = head.sort_values("score_physics", ascending=False, kind="stable")
    head["rank_physics"] = np.arange(1, len(head) + 1)
    rest = top_high_k.iloc[len(head) :].copy()
    rest["rank_physics"] = np.arange(len(head) + 1, len(head) + 1 + len(rest))
    out = pd.concat([head, rest], ignore_index=True)
    seconds = time.perf_counter() - start
    info = {
        "top": int(len(head)),
        "n_used": int(sum(used)),
        "seconds": round(seconds, 3),
        "seconds_per_candidate": round(seconds / max(len(head), 1), 3),
        "rule": model.config.rule,
    }
    log.info("physics stage: %d of the top %d re-ranked with the physics term in %.0f s", sum(used), len(head), seconds)
    return out, info
