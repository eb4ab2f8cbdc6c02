"""Matformer-style multi-head attention message layer (GoeCTP (Mat.), paper eq. 8)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as fn
from torch_geometric.utils import scatter


class MatformerLayer(nn.Module):
    r"""Multi-head attention over periodic multi-edges, with sigmoid (not softmax) attention weights.

    The hidden size splits into :math:`H` heads of :math:`d_h = d / H` channels. For edge :math:`j \to i` and
    head :math:`h` (superscript :math:`h` = that head's slice):

    .. math::
        q_i = W_q h_i, \quad k_j = W_k h_j, \quad \epsilon_{ij} = W_e e_{ij}, \qquad
        \alpha_{ij}^h = \sigma\Big(\frac{\langle q_i^h \| q_i^h,\; k_j^h \| \epsilon_{ij}^h\rangle}
        {\sqrt{2 d_h}}\Big) \in (0, 1),

        v_{ij} = \mathrm{LN}\big(W_v (h_i \,\|\, h_j \,\|\, e_{ij})\big) \in \mathbb R^{2d}, \qquad
        h_i' = h_i + \mathrm{softplus}\Big(\mathrm{BN}\big(W_o\, \big\Vert_h
        \textstyle\sum_j \alpha_{ij}^h v_{ij}^h\big)\Big)

    One scalar weight per edge and head (each head attends on its own channels); the sigmoid (Matformer) lets the
    sum grow with the number of images, so repeated neighbours are not normalised away.

    Args:
        dim: node and edge feature size :math:`d`.
        heads: number of attention heads :math:`H` (must divide ``dim``).

    Shapes:
        - **input:** node features ``h`` ``[N, d]``, ``edge_index`` ``[2, E]`` (row 0 the source ``j``, row 1 the
          target ``i``), edge features ``edge_attr`` ``[E, d]``
        - **output:** node features ``[N, d]``; :meth:`attention` gives the weights ``[E, H]``
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"hidden size {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.dh = dim, heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.e = nn.Linear(dim, dim)
        self.v = nn.Linear(3 * dim, 2 * dim)
        self.ln_msg = nn.LayerNorm(2 * dim)
        self.out = nn.Linear(2 * dim, dim)
        self.norm = nn.BatchNorm1d(dim)

    def reset_parameters(self) -> None:
        """Re-initialise every linear map and norm (and the batch norm's running statistics)."""
        for m in (self.q, self.k, self.e, self.v, self.ln_msg, self.out, self.norm):
            m.reset_parameters()

    def attention(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        """The attention weights :math:`\\alpha_{ij}^h` ``[E, H]``."""
        src, dst = edge_index
        q = self.q(h)[dst].view(-1, self.heads, self.dh)  # [E, H, d_h]
        k = self.k(h)[src].view(-1, self.heads, self.dh)
        e = self.e(edge_attr).view(-1, self.heads, self.dh)
        return torch.sigmoid(((q * k).sum(-1) + (q * e).sum(-1)) / math.sqrt(2 * self.dh))  # [E, H]

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        alpha = self.attention(h, edge_index, edge_attr)  # [E, H]
        value = self.ln_msg(self.v(torch.cat([h[dst], h[src], edge_attr], dim=-1)))  # [E, 2d]
        msg = alpha.unsqueeze(-1) * value.view(-1, self.heads, 2 * self.dh)  # [E, H, 2 d_h]
        agg = scatter(msg.reshape(-1, 2 * self.dim), dst, dim=0, dim_size=h.size(0), reduce="sum")  # [N, 2d]
        return h + fn.softplus(self.norm(self.out(agg)))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, heads={self.heads})"
