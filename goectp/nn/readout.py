"""Readouts: a rank-2 tensor head that applies the frame, and an invariant scalar head for pretraining."""

from __future__ import annotations

import torch
from torch import nn


def mlp(dims: list[int]) -> nn.Sequential:
    """``Linear → SiLU → … → Linear`` through the sizes ``dims`` (no activation after the last layer)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


def _reset_mlp(seq: nn.Sequential) -> None:
    for m in seq:
        if isinstance(m, nn.Linear):
            m.reset_parameters()


class TensorHead(nn.Module):
    r"""Pooled features → a symmetric 3x3 tensor in the canonical frame, rotated back by the frame.

    With :math:`A = \mathrm{reshape}_{3\times3}(\mathrm{MLP}(p))` and :math:`s, \mu` the target scale and mean
    (buffers ``scale`` and ``shift``, set from the training data):

    .. math::
        \varepsilon = s\, F\, \tfrac12 (A + A^\top)\, F^\top + \mu I \qquad \text{(default)},

        \varepsilon = I + s\, F A A^\top F^\top \qquad \text{(positive_definite: eigenvalues} \ge 1
        \text{ for } s > 0; \mu \text{ is not used)}

    Args:
        dim: pooled feature size :math:`d`.
        positive_definite: use the second form.

    Shapes:
        - **input:** pooled features ``pooled`` ``[B, d]``, frames ``frame`` ``[B, 3, 3]``
        - **output:** tensors ``[B, 3, 3]`` (symmetric)
    """

    def __init__(self, dim: int, positive_definite: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = mlp([dim, dim, dim, 9])
        self.positive_definite = positive_definite
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))

    def reset_parameters(self) -> None:
        """Re-initialise the MLP; the target statistics ``scale`` and ``shift`` are kept."""
        _reset_mlp(self.mlp)

    def canonical(self, pooled: torch.Tensor) -> torch.Tensor:
        r"""The tensor in the canonical frame before scaling: :math:`\tfrac12(A + A^\top)` or :math:`A A^\top`
        ``[B, 3, 3]``."""
        a = self.mlp(pooled).view(-1, 3, 3)  # [B, 3, 3]
        if self.positive_definite:
            return a @ a.transpose(-1, -2)
        return 0.5 * (a + a.transpose(-1, -2))

    def forward(self, pooled: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        canon = self.canonical(pooled)
        eye = torch.eye(3, dtype=canon.dtype, device=canon.device)
        if self.positive_definite:
            return eye + self.scale * (frame @ canon @ frame.transpose(-1, -2))
        return self.scale * (frame @ canon @ frame.transpose(-1, -2)) + self.shift * eye

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, positive_definite={self.positive_definite})"


class ScalarHead(nn.Module):
    r"""Pooled invariant features → one scalar per structure, :math:`y = s\,\mathrm{MLP}(p) + \mu` (used for
    pretraining; the frame is not applied).

    Args:
        dim: pooled feature size :math:`d`.

    Shapes:
        - **input:** pooled features ``pooled`` ``[B, d]`` (``frame`` is accepted and ignored)
        - **output:** ``[B]``
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = mlp([dim, dim, dim, 1])
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))

    def reset_parameters(self) -> None:
        """Re-initialise the MLP; the target statistics ``scale`` and ``shift`` are kept."""
        _reset_mlp(self.mlp)

    def forward(self, pooled: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale * self.mlp(pooled).squeeze(-1) + self.shift

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim})"
