"""The release path of a trained ensemble: export it with a model card, calibrate its σ, combine shipped ones,
ship a shared network once.

:func:`export_ensemble` (``goectp ensemble export``), :func:`calibrate` (``goectp ensemble calibrate``),
:func:`combine_ensembles` (``goectp ensemble combine``), :func:`share_parts` (``goectp ensemble share``).
"""

from goectp.release.calibrate import calibrate
from goectp.release.combine import combine_ensembles
from goectp.release.export import export_ensemble
from goectp.release.share import share_parts

__all__ = ["calibrate", "combine_ensembles", "export_ensemble", "share_parts"]
