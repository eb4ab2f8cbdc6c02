"""The release path of a trained ensemble: export it with a model card, calibrate its σ, combine shipped ones.

:func:`export_ensemble` (``goectp ensemble export``), :func:`calibrate` (``goectp ensemble calibrate``),
:func:`combine_ensembles` (``goectp ensemble combine``).
"""

from goectp.release.calibrate import calibrate
from goectp.release.combine import combine_ensembles
from goectp.release.export import export_ensemble

__all__ = ["calibrate", "combine_ensembles", "export_ensemble"]
