"""Gaussian radial basis expansion of a scalar (distance, cosine, length)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianRBF(nn.Module):
    r"""Expand a scalar ``x`` on ``n`` Gaussians with evenly spaced centres :math:`\mu_k \in [x_0, x_1]`.

    .. math:: \phi_k(x) = \exp\!\big(-\gamma (x - \mu_k)^2\big), \qquad \gamma = 1 / \Delta\mu^2

    Shapes: ``x`` ``[...]`` → ``[..., n]``.
    """

    def __init__(self, start: float = 0.0, stop: float = 8.0, num: int = 64) -> None:
        super().__init__()
        self.register_buffer("centers", torch.linspace(start, stop, num))
        self.gamma = 1.0 / float((stop - start) / (num - 1)) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (x.unsqueeze(-1) - self.centers.to(x.dtype)) ** 2)
