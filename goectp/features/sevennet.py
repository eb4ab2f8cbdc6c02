r"""Invariant per-atom features from SevenNet-0 (Park et al., *J. Chem. Theory Comput.* 20, 4857 (2024)).

SevenNet-0 (11 Jul 2024; a NequIP-type E(3)-equivariant potential trained on MPtrj) carries ``128x0e + 64x1e +
32x2e`` features per atom through four interaction blocks; its fifth block keeps only the invariant channels:

.. math::
    x_i = h_i^{(5)} \in \mathbb{R}^{128} \quad (\texttt{128x0e}),

the input of SevenNet's per-atom energy readout (``reduce_input_to_hidden``). SevenNet-0's irreps carry no parity
(its vectors are ``1e``), so these scalars are rotation-invariant but change under inversion (by up to ~75 for a
triclinic cell). The features used here are therefore the mean over the structure and its inversion image,
``½ [x(X) + x(−X)]``: O(3)-invariant, at twice SevenNet's cost. As for CHGNet, SevenNet runs on the structure
rotated into GoeCTP's canonical orientation.

Only the modules up to the readout are run, without gradients (no forces or stress). The checkpoint ships inside
the ``sevenn==0.13.0`` wheel: loading is offline. ``pip install 'goectp-explorer[foundation]'``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goectp.frame import canonicalize

INSTALL_HINT = "SevenNet features need sevenn==0.13.0: pip install 'goectp-explorer[foundation]'"

#: the module whose *input* is the feature vector
READOUT = "reduce_input_to_hidden"


def packaged_checkpoint(model_name: str) -> str:
    """The absolute path of a pretrained SevenNet checkpoint *inside the sevenn package*.

    ``sevenn.util.load_checkpoint(name)`` first tries ``name`` as a path relative to the working directory and
    unpickles whatever file it finds there (``torch.load(weights_only=False)``): a file named ``7net-0`` planted in
    the folder a user works in would run code. The package's own file is named by its absolute path instead.
    """
    import sevenn
    import sevenn.util

    try:
        path = Path(sevenn.util.pretrained_name_to_path(model_name)).resolve()
    except ValueError:  # not a name sevenn knows
        path = Path()
    if not path.is_file() or Path(sevenn.__file__).resolve().parent not in path.parents:
        raise ValueError(f"SevenNet model {model_name!r}: no checkpoint of that name inside the sevenn package")
    return str(path)


def load_sevennet(model_name: str = "7net-0", device: str = "cpu") -> tuple[Any, dict]:
    """``(model, config)`` of a SevenNet checkpoint inside the ``sevenn`` wheel (:func:`packaged_checkpoint`), in
    eval mode on ``device``; sevenn's own prints and warnings silenced."""
    import sevenn.util

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checkpoint = sevenn.util.load_checkpoint(packaged_checkpoint(model_name))
        return checkpoint.build_model().to(device).eval(), checkpoint.config


class SevennetFeatures:
    """Callable: ``structures`` → list of ``[N_i, 128]`` float32 arrays (site order of each structure).

    Args:
        model_name: a SevenNet checkpoint shipped in the wheel ('7net-0' default, the 11 Jul 2024 model).
    """

    name = "sevennet"
    dim = 128

    def __init__(self, model_name: str = "7net-0", device: str = "cpu") -> None:
        try:
            import sevenn
            import sevenn.util
            from sevenn.atom_graph_data import AtomGraphData
            from sevenn.train.dataload import unlabeled_atoms_to_graph
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(INSTALL_HINT) from exc
        self._to_graph, self._data_cls = unlabeled_atoms_to_graph, AtomGraphData
        self.model_name = model_name
        #: goes into cache keys: a different SevenNet release or checkpoint gives different features
        self.version = f"sevenn-{sevenn.__version__}-{model_name}-inversion-mean"
        self.model, config = load_sevennet(model_name, device)
        self.model.set_is_batch_data(False)
        if READOUT not in self.model._modules:
            raise ValueError(f"SevenNet model {model_name!r} has no {READOUT!r} module; cannot take its features")
        self.cutoff = float(config["cutoff"])
        self.type_map = dict(self.model.type_map)
        self.device = device

    @torch.no_grad()
    def __call__(self, structures: Sequence[Any]) -> list[np.ndarray]:

        out: list[np.ndarray] = []
        for s in structures:
            formula = s.composition.reduced_formula
            unknown = sorted({site.specie.symbol for site in s if site.specie.Z not in self.type_map})
            if unknown:
                raise ValueError(f"SevenNet-0 has no embedding for {', '.join(unknown)} (in {formula})")
            inverted = type(s)(s.lattice, s.species, -s.frac_coords)  # the inversion image, same atom order
            out.append(0.5 * (self._features(s, formula) + self._features(inverted, formula)))
        return out

    def _features(self, structure: Any, formula: str) -> np.ndarray:
        from pymatgen.io.ase import AseAtomsAdaptor

        atoms = AseAtomsAdaptor.get_atoms(canonicalize(structure))
        try:
            data = self._data_cls.from_numpy_dict(self._to_graph(atoms, self.cutoff, with_shift=False))
        except Exception as exc:
            raise ValueError(f"SevenNet could not build a graph for {formula}: {exc}") from exc
        data = self.model._preprocess(data.to(self.device))
        for name, module in self.model._modules.items():
            if name == READOUT:
                break
            data = module(data)
        return data["x"].detach().float().cpu().numpy()
