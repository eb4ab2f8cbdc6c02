"""GoeCTP models: the configurable frame-averaged crystal graph network, and the sum of an ε∞ and an ionic one."""

from goectp.models.goectp import VARIANTS, GoeCTP, GoeCTPConfig
from goectp.models.sum import PARTS, SumOfParts

__all__ = ["PARTS", "VARIANTS", "GoeCTP", "GoeCTPConfig", "SumOfParts"]
