"""A model of the static tensor as the sum of two separately trained networks: ε = ε∞ + ε_ionic.

    f(X) = f_electronic(X) + f_ionic(X)

Each part is a frame-averaged :class:`~goectp.models.GoeCTP`, so each is O(3)-equivariant and invariant to the
choice of cell, and so is their sum. The parts read the same graphs (same neighbour count and cell; at most one
set of foundation-model node features, which the other part ignores) and were trained on the same split, so the
sum is one ensemble member like any other: it predicts the total tensor and has one training set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from goectp.models.goectp import GoeCTP, GoeCTPConfig, ModelOutput

#: The parts a sum is made of, by the DFPT tensor each predicts; their sum is the total (static) tensor.
PARTS = ("electronic", "ionic")


class SumOfParts(nn.Module):
    """``forward`` → ``[B, 3, 3]``: the electronic (ε∞) part plus the ionic part, each ``[B, 3, 3]``.

    Args:
        parts: ``{"electronic": GoeCTP, "ionic": GoeCTP}`` (see :data:`PARTS`).
        config: the graph settings both parts read (:func:`goectp.models.ensemble.graph_config` of the parts).
        meta: the member's metadata: ``target`` ("total"), ``split_seed`` and each part's own metadata.
    """

    def __init__(self, parts: dict[str, GoeCTP], config: GoeCTPConfig, meta: dict | None = None) -> None:
        super().__init__()
        if sorted(parts) != sorted(PARTS):
            raise ValueError(f"a sum needs exactly the parts {PARTS}, got {sorted(parts)}")
        self.parts = nn.ModuleDict({name: parts[name] for name in PARTS})
        self.config = config
        self.meta = dict(meta or {})

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:
        return self.outputs(batch, use_frame).prediction

    def forward_parts(self, batch, use_frame: bool | None = None) -> dict[str, torch.Tensor]:
        """``{"electronic": [B, 3, 3], "ionic": [B, 3, 3]}``: the two parts apart (ε∞ gives the refractive index)."""
        return self.outputs(batch, use_frame).parts

    def outputs(self, batch, use_frame: bool | None = None, memo: dict[int, ModelOutput] | None = None) -> ModelOutput:
        """One pass of each part: the sum, the ionic part's embedding (see :meth:`embed`) and the parts.

        ``memo`` (``{id(network): its output on this batch}``, kept by the caller for one batch) lets members that
        hold the same part module (:func:`goectp.models.ensemble.share_identical_parts`) run it once."""
        memo = {} if memo is None else memo
        outs = {}
        for name, part in self.parts.items():
            if id(part) not in memo:
                memo[id(part)] = part.outputs(batch, use_frame)
            outs[name] = memo[id(part)]
        parts = {name: out.prediction for name, out in outs.items()}
        return ModelOutput(parts["electronic"] + parts["ionic"], outs["ionic"].embedding, parts)

    def embed(self, batch, use_frame: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ionic part's ``(pooled [B, d], frame [B, 3, 3])``: the part whose error dominates, so the distance of
        a crystal to the training set (:mod:`goectp.uncertainty`) is measured where the uncertainty is."""
        return self.parts["ionic"].embed(batch, use_frame)

    def backbone_prediction(self, batch) -> torch.Tensor:
        return self.forward(batch, use_frame=False)

    def networks(self) -> Sequence[GoeCTP]:
        return list(self.parts.values())
