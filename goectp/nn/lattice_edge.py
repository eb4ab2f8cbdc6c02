"""iComFormer-style edge layer that attends over the three lattice vectors (GoeCTP (iCom.), paper eq. 9)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as fn

from goectp.nn.rbf import GaussianRBF


class LatticeEdgeLayer(nn.Module):
    r"""Update every edge feature by attending over the lattice vectors :math:`\ell_1, \ell_2, \ell_3`.

    For edge :math:`ij` with (canonical) vector :math:`r_{ij}` and each lattice vector :math:`\ell_k`:

    .. math::
        a_{ijk} = \mathrm{RBF}(\cos\angle(r_{ij}, \ell_k)) \,\|\, \mathrm{RBF}(|\ell_k|), \qquad
        \beta_{ijk} = \mathrm{softmax}_k\big((W_q e_{ij})^\top W_k a_{ijk} / \sqrt d\big),

        e_{ij}' = e_{ij} + \mathrm{softplus}\Big(\mathrm{LN}\big(W_o [e_{ij} \,\|\, \textstyle\sum_k \beta_{ijk} W_v a_{ijk}]\big)\Big)

    A single-head attention over the three lattice vectors (softmax over :math:`k`).

    Args:
        dim: edge feature size :math:`d`.
        num_rbf: Gaussians for the cosine and for the length.
        max_length: largest centre of the length expansion (Å).

    Shapes:
        - **input:** edge features ``edge_attr`` ``[E, d]``, edge vectors ``edge_vec`` ``[E, 3]``, ``lattice``
          ``[E, 3, 3]`` (columns = lattice vectors, already gathered per edge)
        - **output:** edge features ``[E, d]``
    """

    def __init__(self, dim: int, num_rbf: int = 16, max_length: float = 20.0) -> None:
        super().__init__()
        self.dim, self.num_rbf, self.max_length = dim, num_rbf, max_length
        self.rbf_cos = GaussianRBF(-1.0, 1.0, num_rbf)
        self.rbf_len = GaussianRBF(0.0, max_length, num_rbf)
        self.a = nn.Linear(2 * num_rbf, dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(2 * dim, dim)
        self.ln = nn.LayerNorm(dim)
        self.scale = 1.0 / math.sqrt(dim)

    def reset_parameters(self) -> None:
        """Re-initialise every linear map and the layer norm."""
        for m in (self.a, self.q, self.k, self.v, self.out, self.ln):
            m.reset_parameters()

    def forward(self, edge_attr: torch.Tensor, edge_vec: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
        lat = lattice.transpose(-1, -2)  # [E, 3 (k), 3 (xyz)]
        lat_len = lat.norm(dim=-1)  # [E, 3]
        r = edge_vec / edge_vec.norm(dim=-1, keepdim=True)  # [E, 3]
        cos = torch.einsum("ex,ekx->ek", r, lat) / lat_len  # [E, 3]
        a = fn.silu(self.a(torch.cat([self.rbf_cos(cos), self.rbf_len(lat_len)], dim=-1)))  # [E, 3, d]
        score = torch.einsum("ed,ekd->ek", self.q(edge_attr), self.k(a)) * self.scale  # [E, 3]
        ctx = torch.einsum("ek,ekd->ed", score.softmax(dim=-1), self.v(a))  # [E, d]
        return edge_attr + fn.softplus(self.ln(self.out(torch.cat([edge_attr, ctx], dim=-1))))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, num_rbf={self.num_rbf}, max_length={self.max_length:g})"
