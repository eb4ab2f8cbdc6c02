r"""Uncertainty: calibrated ensemble σ and out-of-distribution (OOD) flags, stored next to an ensemble as
``calibration.json`` and loaded with it.

- :mod:`~goectp.uncertainty.sigma`: the σ model and its fit; :mod:`~goectp.uncertainty.heldout`: held-out
  predictions and sub-ensembles, and :func:`fit_calibration`; :mod:`~goectp.uncertainty.ood`: the OOD statistics;
  :mod:`~goectp.uncertainty.calibration`: the :class:`Calibration` object and its file.

Why calibrate on held-out *sub-ensembles*
------------------------------------------
The shipped ensembles' members were each trained on one of five random 80/10/10 splits (split seeds 0-4,
:func:`goectp.data.random_split`): ``fast`` and the other families have one member per split, the 25-member default
(``combined``) five per split. Any record of the data file is in the training set of ~4 in 5 members, so the full
ensemble's spread on it is not the spread a user sees on a new crystal (members agree on what they fitted).
What is honest: for each record *i*, the members that did **not** train on it (its split is val or test for them;
val only chose the epoch) form an unseen sub-ensemble :math:`U_i`. Records with :math:`|U_i| \ge 2` (732 of 2,733
for a 5-member family, 1,823 for the default) give a mean :math:`\mu_U`, a member spread and the truth — a
held-out prediction with its own spread, the same construct the deployed ensemble produces on a new crystal. (Using
only the members' test sets would leave ~8 % of the records, too few for a fit; the benchmark reports the test-only
subset separately.)

The spread of ``n`` members is the population std (``ddof=0``, as :func:`goectp.predict` returns it); it is turned
into an estimate of the member standard deviation :math:`\hat\tau = \sigma_{\rm pop}\sqrt{n/(n-1)}` so that
sub-ensembles of any size and the deployed ensemble are on one scale. The calibrated σ is

.. math::  \sigma_{\rm cal}^2 = (s\,\hat\tau)^2 + (c\,|\mu|)^2

for the diagonal tensor components and for ε̄: ``form = "scale"`` (c = 0: s is the quantile for which ±2σ covers
95.4 %) or ``"scale+relative"`` (an error floor that grows with |μ|; s and c on a grid such that the ±2σ and ±1σ
coverages of the calibration points lie in the bands 90-97 % and 60-75 %, closest to the Gaussian 68.3 % / 95.4 %;
:func:`fit_form`). The form with the better 5-fold *out-of-fold* band coverage is kept, out-of-fold Gaussian NLL
breaking ties (:func:`fit_quantity`). σ(α) is propagated from the calibrated eigenvalue σ's times a fitted factor
(:func:`propagated_alpha_sigma`, :func:`fit_propagated`). The errors are heavy-tailed (a few % of crystals,
soft-mode/ferroelectric-like, miss by about ε itself), so no single σ gives both Gaussian coverages; a relative
floor c|μ| is what the data choose. Sub-ensembles smaller than the deployed ensemble have a noisier spread and a
noisier mean, so the calibrated σ is, if anything, slightly conservative for the deployed ensemble.

OOD flags (:meth:`Calibration.ood`)
-----------------------------------
- ``unseen element`` / ``rare element``: an element in no / fewer than ``rare_threshold`` training records;
- ``embedding``: the distance of the pooled embedding (:meth:`goectp.models.GoeCTP.embed`) to the member's training
  set — RMS of per-dimension z-scores, :math:`d = \lVert (z - m)/s\rVert_2/\sqrt{D}` — divided by that member's
  99th percentile over its training records, averaged over members, above 1;
- ``disagreement``: the raw member spread of ε̄ relative to |ε̄| above the 99th percentile of the calibration points
  (members disagree beyond the range the calibration saw).

Only the numbers the flags need are stored: element counts, per-member embedding mean/std (D floats each) and the
thresholds.
"""

from goectp.uncertainty.calibration import (
    CALIBRATION_FILE,
    Calibration,
    attach_calibration,
    calibration_for,
    ensemble_fingerprint,
    folder_calibration,
)
from goectp.uncertainty.heldout import (
    calibration_points,
    cfg_target,
    fit_calibration,
    heldout_predictions,
    split_means,
    split_members,
    subensemble_stats,
    training_masks,
)
from goectp.uncertainty.ood import RARE_THRESHOLD, element_counts, embedding_distance, embedding_stats
from goectp.uncertainty.sigma import (
    QUANTITIES,
    calibrated_sigma,
    coverage,
    fit_factor,
    fit_quantity,
    gaussian_nll,
    propagated_alpha_sigma,
    tau_hat,
)

__all__ = [
    "CALIBRATION_FILE",
    "QUANTITIES",
    "RARE_THRESHOLD",
    "Calibration",
    "attach_calibration",
    "calibrated_sigma",
    "calibration_for",
    "calibration_points",
    "cfg_target",
    "coverage",
    "element_counts",
    "embedding_distance",
    "embedding_stats",
    "ensemble_fingerprint",
    "fit_calibration",
    "fit_factor",
    "fit_quantity",
    "folder_calibration",
    "gaussian_nll",
    "heldout_predictions",
    "propagated_alpha_sigma",
    "split_means",
    "split_members",
    "subensemble_stats",
    "tau_hat",
    "training_masks",
]
