"""GoeCTP's plain message-passing layer (paper eq. 4; a CGCNN-style gated MLP message)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as fn
from torch_geometric.utils import scatter


class MLPMessageLayer(nn.Module):
    r"""One message-passing update with a gated MLP message and a softplus residual.

    .. math::
        z_{ij} = h_i \,\|\, h_j \,\|\, e_{ij}, \qquad
        m_{ij} = \sigma(W_g z_{ij} + b_g) \odot \mathrm{softplus}(W_m z_{ij} + b_m), \qquad
        h_i' = \mathrm{softplus}\Big(h_i + \mathrm{BN}\big(\textstyle\sum_{j \in \mathcal N(i)} m_{ij}\big)\Big)

    The sum runs over all periodic images (multi-edges). :math:`W_g, W_m` are the two halves of one linear map,
    applied as ``W z = W_i h_i + W_j h_j + W_e e``: the node parts once per node ``[N, 2d]`` and gathered onto the
    edges, so the edge-sized product is ``[E, d_e] x [d_e, 2d]`` instead of ``[E, 2d + d_e] x [2d + d_e, 2d]``.

    Args:
        dim: node feature size :math:`d`.
        edge_dim: edge feature size :math:`d_e`.

    Shapes:
        - **input:** node features ``h`` ``[N, d]``, ``edge_index`` ``[2, E]`` (row 0 the source ``j``, row 1 the
          target ``i``), edge features ``edge_attr`` ``[E, d_e]``
        - **output:** node features ``[N, d]``
    """

    def __init__(self, dim: int, edge_dim: int) -> None:
        super().__init__()
        self.dim, self.edge_dim = dim, edge_dim
        self.lin = nn.Linear(2 * dim + edge_dim, 2 * dim)
        self.norm = nn.BatchNorm1d(dim)

    def reset_parameters(self) -> None:
        """Re-initialise the linear map and the batch norm (weights and running statistics)."""
        self.lin.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        d, w = self.dim, self.lin.weight  # w: [2d, 2d + d_e], columns (h_i | h_j | e)
        at_target = fn.linear(h, w[:, :d], self.lin.bias)  # [N, 2d]
        at_source = fn.linear(h, w[:, d : 2 * d])  # [N, 2d]
        z = fn.linear(edge_attr, w[:, 2 * d :])  # [E, 2d], then + W_i h_i + W_j h_j + b (in place: memory-bound)
        z += at_target.index_select(0, dst)
        z += at_source.index_select(0, src)
        gate, msg = z.chunk(2, dim=-1)  # [E, d] each
        m = torch.sigmoid(gate) * fn.softplus(msg)
        agg = scatter(m, dst, dim=0, dim_size=h.size(0), reduce="sum")  # [N, d]
        return fn.softplus(h + self.norm(agg))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dim}, edge_dim={self.edge_dim})"
