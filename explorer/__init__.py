"""GoeCTP Explorer: Panel components for structures, the canonical frame, tensor ellipsoids, the equivariance
check and the screening map. Run the app with ``panel serve explorer/app.py``; use the components in Jupyter after
``pn.extension('tabulator')``.

The components are imported lazily (``from explorer import StructureViewer`` imports Panel and torch then), so that
light submodules such as :mod:`explorer.paths` or :mod:`explorer.testing` stay cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CellChoiceCheck": "explorer.cell_choice",
    "DatasetIndex": "explorer.loader",
    "EquivarianceCheck": "explorer.equivariance",
    "ExampleGallery": "explorer.loader",
    "ModelSelector": "explorer.models",
    "ScreeningData": "explorer.screening",
    "ScreeningMap": "explorer.screening",
    "StructureLoader": "explorer.loader",
    "StructureViewer": "explorer.viewer",
    "TensorEllipsoid": "explorer.tensor_view",
    "build_demo_model": "explorer.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")
