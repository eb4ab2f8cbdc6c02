r"""Invariant per-atom features from CHGNet (Deng et al., *Nat. Mach. Intell.* 5, 1031 (2023)), weights from its wheel.

CHGNet 0.3.0 (trained on MPtrj, 1.58 M DFT frames) describes each atom by 64 features after every interaction
block. We take two of them:

.. math::
    x_i = \big[\, h_i^{(3)} \;\big\|\; \mathrm{LayerNorm}(h_i^{(4)}) \,\big] \in \mathbb{R}^{128}

``h⁽³⁾`` is CHGNet's own ``atom_fea`` (before the last interaction block, also the input of its magnetic-moment
head) and ``h⁽⁴⁾`` is what its per-site energy MLP reads. CHGNet sees only distances and angles, so ``x`` is
O(3)-invariant. To make it invariant *bit for bit* up to float32 rounding of a ~1e-15 input difference, CHGNet is run
on the structure rotated into GoeCTP's canonical orientation (lattice ``H`` of ``L = F H``): a rotated or reflected
copy of a crystal is handed to CHGNet as (almost exactly) the same numbers.

CHGNet runs in **float64** here (its module-level ``TORCH_DTYPE`` switched for this process): in its own float32,
two descriptions of the same crystal (another basis, a supercell) give features that differ by ~1e-7, enough to move
a GoeCTP prediction by ~1e-6; in float64 they agree to ~1e-14, so the exact cell-choice invariance of
:mod:`goectp.canonical` carries over to the feature models.

The weights ship inside the ``chgnet==0.4.2`` wheel: loading is offline. ``pip install 'goectp-explorer[foundation]'``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from goectp.frame import canonicalize

INSTALL_HINT = "CHGNet features need chgnet==0.4.2: pip install 'goectp-explorer[foundation]'"


class ChgnetFeatures:
    """Callable: ``structures`` → list of ``[N_i, 128]`` float32 arrays (site order of each structure).

    Args:
        model_name: CHGNet checkpoint shipped in the wheel ('0.3.0' default; '0.2.0'; 'r2scan').
        device: torch device for CHGNet (default CPU; features are cached, so this runs once per dataset).
        batch_size: structures per CHGNet forward pass.
    """

    name = "chgnet"
    dim = 128

    def __init__(self, model_name: str = "0.3.0", device: str = "cpu", batch_size: int = 16) -> None:
        try:
            import chgnet
            from chgnet.model import CHGNet
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError(INSTALL_HINT) from exc
        self.model_name = model_name
        self.batch_size = batch_size
        #: goes into cache keys: a different CHGNet release or checkpoint gives different features
        self.version = f"chgnet-{chgnet.__version__}-{model_name}-float64"
        with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints a banner even with verbose=False
            self.model = CHGNet.load(model_name=model_name, use_device=device, verbose=False).eval().double()
        _chgnet_in_float64(self.model)
        self.model.graph_converter.set_isolated_atom_response("ignore")  # an isolated atom keeps its embedding
        self._final: list[torch.Tensor] = []
        hook_on = self.model.readout_norm if self.model.readout_norm is not None else self.model.atom_conv_layers[-1]
        hook_on.register_forward_hook(lambda _m, _i, out: self._final.append(out.detach()))

    @torch.no_grad()
    def __call__(self, structures: Sequence[Any]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for start in range(0, len(structures), self.batch_size):
            chunk = structures[start : start + self.batch_size]
            graphs = []
            for s in chunk:
                try:
                    graphs.append(_to_float64(self.model.graph_converter(canonicalize(s))))
                except Exception as exc:
                    formula = s.composition.reduced_formula
                    raise ValueError(f"CHGNet could not build a graph for {formula}: {exc}") from exc
            self._final.clear()
            pred = self.model(graphs, task="e", return_atom_feas=True)
            final = torch.split(self._final[-1], [len(s) for s in chunk])
            for penultimate, last in zip(pred["atom_fea"], final):
                out.append(torch.cat([penultimate, last], dim=-1).float().cpu().numpy())
        return out


def _chgnet_in_float64(model: Any) -> None:
    """Make CHGNet build its graphs and composition inputs in float64 (it hard-codes float32 in three modules)."""
    import chgnet.graph.converter as converter
    import chgnet.graph.crystalgraph as crystalgraph
    import chgnet.model.model as chgnet_model

    converter.TORCH_DTYPE = crystalgraph.TORCH_DTYPE = chgnet_model.TORCH_DTYPE = torch.float64
    comp = getattr(model, "composition_model", None)
    if comp is not None:
        comp._get_energy = lambda feas: comp.fc(feas.to(torch.float64)).view(-1)


def _to_float64(graph: Any) -> Any:
    for key, value in vars(graph).items():
        if torch.is_tensor(value) and value.is_floating_point():
            setattr(graph, key, value.to(torch.float64))
    return graph
