"""GoeCTP: O(3)-equivariant dielectric tensor prediction by polar-frame averaging of crystal graph networks."""

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
