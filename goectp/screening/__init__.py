"""Virtual screening at scale: ensemble uncertainty, high-κ and anisotropy rankings, on Dask.

Modules: :mod:`~goectp.screening.pool` (reading pools), :mod:`~goectp.screening.scoring` (ε̄, α, std, scores),
:mod:`~goectp.screening.filters` (training exclusion, list rules), :mod:`~goectp.screening.worker` (one chunk),
:mod:`~goectp.screening.engine` (chunking, Dask, resume), :mod:`~goectp.screening.run` (a complete run),
:mod:`~goectp.screening.reference` (DFT hits), :mod:`~goectp.screening.export` (explorer files),
:mod:`goectp.cli.screen` (``goectp screen``).
"""

from goectp.screening.engine import ScreeningOptions
from goectp.screening.filters import TrainingIndex, load_training_index
from goectp.screening.pool import PoolError, open_pool
from goectp.screening.reference import compare_with_reference, load_reference_hits
from goectp.screening.run import ScreeningRun, run_screening
from goectp.screening.scoring import acquisition_score, ensemble_statistics
from goectp.screening.store import ScreeningError

__all__ = [
    "PoolError",
    "ScreeningError",
    "ScreeningOptions",
    "ScreeningRun",
    "TrainingIndex",
    "acquisition_score",
    "compare_with_reference",
    "ensemble_statistics",
    "load_reference_hits",
    "load_training_index",
    "open_pool",
    "run_screening",
]
