"""Gaussian radial basis expansion of a scalar (distance, cosine, length)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianRBF(nn.Module):
    r"""Expand a scalar ``x`` on ``num`` Gaussians with evenly spaced centres :math:`\mu_k \in [x_0, x_1]`.

    .. math:: \phi_k(x) = \exp\!\big(-\gamma (x - \mu_k)^2\big), \qquad \gamma = 1 / \Delta\mu^2

    Args:
        start: the first centre :math:`x_0`.
        stop: the last centre :math:`x_1`.
        num: the number of Gaussians (at least 2).

    Shapes:
        - **input:** ``x`` ``[...]`` (any shape)
        - **output:** ``[..., num]``
    """

    def __init__(self, start: float = 0.0, stop: float = 8.0, num: int = 64) -> None:
        super().__init__()
        if num < 2:
            raise ValueError(f"GaussianRBF needs at least 2 centres, got num={num}")
        self.start, self.stop, self.num = float(start), float(stop), int(num)
        self.register_buffer("centers", torch.linspace(start, stop, num))
        self.gamma = 1.0 / float((stop - start) / (num - 1)) ** 2

    def reset_parameters(self) -> None:
        """Nothing to reset: the centres and the width are fixed by the arguments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (x.unsqueeze(-1) - self.centers.to(x.dtype)) ** 2)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(start={self.start:g}, stop={self.stop:g}, num={self.num})"
