"""GoeCTP models: the configurable frame-averaged crystal graph network."""

from goectp.models.goectp import VARIANTS, GoeCTP, GoeCTPConfig

__all__ = ["VARIANTS", "GoeCTP", "GoeCTPConfig"]
