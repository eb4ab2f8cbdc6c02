"""Readouts: a rank-2 tensor head that applies the frame, and an invariant scalar head for pretraining."""

from __future__ import annotations

import torch
from torch import nn


def mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


class TensorHead(nn.Module):
    r"""Pooled features → symmetric 3x3 tensor in the canonical frame, then rotated back by the frame.

    .. math::
        \tilde\varepsilon = \mathrm{sym}\big(\mathrm{reshape}_{3\times3}(\mathrm{MLP}(p))\big) \;\text{or}\;
        I + A A^\top \text{ (positive definite)}, \qquad
        \varepsilon = s\, F \tilde\varepsilon F^\top + \mu I

    with :math:`s, \mu` the target scale and mean (buffers set from training data). Shapes: ``pooled`` ``[B, d]``,
    ``frame`` ``[B, 3, 3]`` → ``[B, 3, 3]``.
    """

    def __init__(self, dim: int, positive_definite: bool = False) -> None:
        super().__init__()
        self.mlp = mlp([dim, dim, dim, 9])
        self.positive_definite = positive_definite
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))

    def forward(self, pooled: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        a = self.mlp(pooled).view(-1, 3, 3)  # [B, 3, 3]
        if self.positive_definite:
            # eps = 1 + s * (A A^T) / shifted so that eigenvalues stay >= 1 after scaling
            canon = a @ a.transpose(-1, -2)
            eye = torch.eye(3, dtype=a.dtype, device=a.device)
            return eye + self.scale * (frame @ canon @ frame.transpose(-1, -2))
        canon = 0.5 * (a + a.transpose(-1, -2))
        eye = torch.eye(3, dtype=a.dtype, device=a.device)
        return self.scale * (frame @ canon @ frame.transpose(-1, -2)) + self.shift * eye


class ScalarHead(nn.Module):
    """Pooled invariant features → one scalar per structure (used for pretraining; the frame is not applied)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = mlp([dim, dim, dim, 1])
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("shift", torch.tensor(0.0))

    def forward(self, pooled: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        return self.scale * self.mlp(pooled).squeeze(-1) + self.shift
