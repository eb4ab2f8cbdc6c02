"""Point-group symmetrisation of rank-2 tensors: ε ← 1/|G| Σ_R R ε Rᵀ over the crystal's Cartesian rotations."""

from __future__ import annotations

import torch
from torch_geometric.utils import scatter


def symmetrize_tensors(eps: torch.Tensor, sym_ops: torch.Tensor, num_sym_ops: torch.Tensor) -> torch.Tensor:
    """Average each tensor over its crystal's point group.

    Shapes: ``eps`` ``[B, 3, 3]``, ``sym_ops`` ``[S_total, 3, 3]`` (concatenated per structure), ``num_sym_ops``
    ``[B]`` → ``[B, 3, 3]``. Equivariant: for a rotated crystal the operations are conjugated ``Q R Qᵀ`` and the
    result rotates with it.
    """
    owner = torch.repeat_interleave(torch.arange(eps.size(0), device=eps.device), num_sym_ops)  # [S_total]
    ops = sym_ops.to(eps.dtype)
    rotated = ops @ eps[owner] @ ops.transpose(-1, -2)  # [S_total, 3, 3]
    return scatter(rotated, owner, dim=0, dim_size=eps.size(0), reduce="mean")
