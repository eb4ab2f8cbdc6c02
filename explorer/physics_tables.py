"""The physics view's tables (no Panel): Born charges per atom and the optical modes ranked by their share of
ε̄_ion, as rows (for tests and exports) and as escaped HTML."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.safe import escape_html

CM1_PER_THZ = 33.35641
MAX_MODE_ROWS = 12


def born_rows(physics: Any) -> list[dict[str, Any]]:
    """One row per site of the canonical cell: species, tr Z*/3, principal values of the symmetric part (ascending),
    the member spread (largest std over the nine components; ``None`` for one model), and Z* itself."""
    rows = []
    std = physics.born_charges_std
    for i, (site, z) in enumerate(zip(physics.cell, physics.born_charges)):
        rows.append(
            {
                "site": i,
                "species": site.specie.symbol,
                "mean": float(np.trace(z) / 3),
                "principal": np.linalg.eigvalsh(0.5 * (z + z.T)).tolist(),
                "spread": None if std is None else float(np.abs(std[i]).max()),
                "tensor": np.asarray(z).tolist(),
            }
        )
    return rows


def mode_rows(physics: Any, max_rows: int = MAX_MODE_ROWS) -> tuple[list[dict[str, Any]], int]:
    """``(rows, left out)``: the optical modes by share of ε̄_ion (the largest ``max_rows``), then every unstable
    mode (flagged); each with its frequency (THz, cm⁻¹), share, |mode charge| and whether it is in the sum."""
    modes = physics.modes
    shares = modes.shares()
    order = [int(i) for i in np.argsort(-shares, kind="stable") if modes.frequency_thz[i] >= 0][:max_rows]
    order += [int(i) for i in np.flatnonzero(modes.frequency_thz < 0)]
    rows = [
        {
            "index": i,
            "frequency_thz": float(modes.frequency_thz[i]),
            "frequency_cm1": float(modes.frequency_thz[i] * CM1_PER_THZ),
            "share": float(shares[i]),
            "mode_charge": float(np.linalg.norm(modes.mode_charge[i])),
            "included": bool(modes.included[i]),
            "unstable": bool(modes.frequency_thz[i] < 0),
        }
        for i in order
    ]
    return rows, len(shares) - len(rows)


def born_table_html(physics: Any) -> str:
    rows = born_rows(physics)
    body = []
    for r in rows:
        spread = "–" if r["spread"] is None else f"± {r['spread']:.2f}"
        principal = " ".join(f"{v:+.2f}" for v in r["principal"])
        body.append(
            f"<tr data-site='{r['site']}'><td>{r['site']}</td><td>{escape_html(r['species'])}</td>"
            f"<td data-value='{r['mean']:.6f}'>{r['mean']:+.2f}</td><td>{principal}</td><td>{spread}</td></tr>"
        )
    full = "".join(
        f"<div><b>{r['site']} {escape_html(r['species'])}</b> "
        + " ; ".join(" ".join(f"{v:+.2f}" for v in row) for row in r["tensor"])
        + "</div>"
        for r in rows
    )
    return (
        "<div class='goectp-physics-born'><div style='font-weight:700'>Born effective charges Z* (e), per atom</div>"
        "<table id='physics-born-table' class='goectp-physics-table'><thead><tr><th>site</th><th>species</th>"
        "<th>tr Z*/3</th><th>principal values (sym. part)</th><th>members</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
        f"<details><summary>full 3×3 Z* (rows a = field; xx xy xz ; yx …)</summary>"
        f"<div style='font-family:monospace;font-size:0.85em'>{full}</div></details></div>"
    )


def mode_table_html(physics: Any) -> str:
    rows, left_out = mode_rows(physics)
    body = []
    for r in rows:
        flag = "unstable (ω² &lt; 0): left out" if r["unstable"] else ("" if r["included"] else "too soft: left out")
        style = " style='color:#c53030'" if r["unstable"] else ""
        body.append(
            f"<tr data-mode='{r['index']}'{style}><td>{r['index']}</td><td>{r['frequency_thz']:.2f}</td>"
            f"<td>{r['frequency_cm1']:.0f}</td><td data-value='{r['share']:.6f}'>{100 * r['share']:.1f} %</td>"
            f"<td>{r['mode_charge']:.3f}</td><td>{flag}</td></tr>"
        )
    more = f"<div style='color:#666'>{left_out} more modes, each with a smaller share.</div>" if left_out else ""
    return (
        "<div class='goectp-physics-modes'><div style='font-weight:700'>Γ-point optical modes that carry ε_ion</div>"
        "<table id='physics-mode-table' class='goectp-physics-table'><thead><tr><th>mode</th><th>ν (THz)</th>"
        "<th>ν (cm⁻¹)</th><th>share of ε̄_ion</th><th>|Z̃| (e/√amu)</th><th></th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{more}</div>"
    )


def table_css() -> str:
    return (
        "<style>.goectp-physics-table{border-collapse:collapse;font-size:0.9em}.goectp-physics-table td,"
        ".goectp-physics-table th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}</style>"
    )
