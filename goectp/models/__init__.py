"""GoeCTP models: the configurable frame-averaged crystal graph network, the sum of an ε∞ and an ionic one, and
ensembles of them."""

from goectp.models.ensemble import Ensemble, EnsembleOutput, networks, prediction_target
from goectp.models.goectp import VARIANTS, GoeCTP, GoeCTPConfig, ModelOutput
from goectp.models.sum import PARTS, SumOfParts

__all__ = [
    "PARTS",
    "VARIANTS",
    "Ensemble",
    "EnsembleOutput",
    "GoeCTP",
    "GoeCTPConfig",
    "ModelOutput",
    "SumOfParts",
    "networks",
    "prediction_target",
]
