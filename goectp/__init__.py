"""GoeCTP: O(3)-equivariant dielectric tensor prediction by polar-frame averaging of crystal graph networks."""

import os as _os

# spglib's old error handling is deprecated (a DeprecationWarning on every call, also through pymatgen's
# SpacegroupAnalyzer): opt in to its exceptions, which every spglib call in goectp catches. setdefault keeps a user's
# own choice; Dask worker processes inherit it.
_os.environ.setdefault("SPGLIB_OLD_ERROR_HANDLING", "false")
# spglib's C library prints "spglib: ssm_get_exact_positions failed." to stderr when a symmetry search at a
# tolerance boundary fails (then it finds no symmetry, which goectp handles). Each call reads the variable, so it
# applies from here on, in this process and in Dask workers; a user's own SPGLIB_WARNING is kept.
_os.environ.setdefault("SPGLIB_WARNING", "OFF")

from goectp.api import Ensemble, available_models, build_model, load_model, predict, predict_summary
from goectp.frame import canonicalize, polar_frame
from goectp.graph import build_crystal_graph
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.structures import StructureError

__version__ = "0.1.0"

__all__ = [
    "Ensemble",
    "GoeCTP",
    "GoeCTPConfig",
    "StructureError",
    "available_models",
    "build_crystal_graph",
    "build_model",
    "canonicalize",
    "load_model",
    "polar_frame",
    "predict",
    "predict_summary",
]
