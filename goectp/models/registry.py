"""The backbones GoeCTP builds (``GoeCTPConfig.variant``), kept apart so that the CLI can read the choices."""

from __future__ import annotations

#: name → the message-passing layers (paper eq. numbers).
VARIANT_LAYERS = {
    "goectp": "MLP messages (eq. 4)",
    "mat": "Matformer multi-head attention (eq. 8)",
    "icom": "Matformer attention + an edge layer over the lattice vectors (eq. 9)",
}
VARIANTS: tuple[str, ...] = tuple(VARIANT_LAYERS)
