"""Matformer-style attention message layer (GoeCTP (Mat.), paper eq. 8)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as fn
from torch_geometric.utils import scatter


class MatformerLayer(nn.Module):
    r"""Multi-head attention over periodic multi-edges with sigmoid (not softmax) attention weights.

    .. math::
        q_{ij} = W_q h_i \,\|\, W_q h_i, \quad k_{ij} = W_k h_j \,\|\, W_e e_{ij}, \quad
        v_{ij} = W_v (h_i \,\|\, h_j \,\|\, e_{ij}),

        \alpha_{ij} = \sigma\big(\mathrm{LN}(q_{ij} \odot k_{ij}) / \sqrt{d_h}\big), \qquad
        h_i' = h_i + \mathrm{softplus}\Big(\mathrm{BN}\big(W_o \textstyle\sum_j \alpha_{ij} \odot \mathrm{LN}(v_{ij})\big)\Big)

    The sigmoid weights (Matformer) let the sum grow with the number of images, so repeated neighbours are not
    normalised away. Shapes: ``h`` ``[N, d]``, ``edge_attr`` ``[E, d]`` → ``[N, d]``.
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} must be divisible by heads {heads}")
        self.heads, self.dh = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.e = nn.Linear(dim, dim)
        self.v = nn.Linear(3 * dim, 2 * dim)
        self.ln_att = nn.LayerNorm(2 * dim)
        self.ln_msg = nn.LayerNorm(2 * dim)
        self.out = nn.Linear(2 * dim, dim)
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        q = self.q(h)[dst]  # [E, d]
        query = torch.cat([q, q], dim=-1)  # [E, 2d]
        key = torch.cat([self.k(h)[src], self.e(edge_attr)], dim=-1)  # [E, 2d]
        alpha = torch.sigmoid(self.ln_att(query * key) / math.sqrt(self.dh))  # [E, 2d]
        value = self.ln_msg(self.v(torch.cat([h[dst], h[src], edge_attr], dim=-1)))  # [E, 2d]
        agg = scatter(alpha * value, dst, dim=0, dim_size=h.size(0), reduce="sum")  # [N, 2d]
        return h + fn.softplus(self.norm(self.out(agg)))
