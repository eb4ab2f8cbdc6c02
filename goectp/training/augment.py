"""Random O(3) augmentation of a batched crystal graph (used only to train the no-frame baseline).

Rotating a finished graph is exact for augmentation (edge vectors, lattices, symmetry operations and targets all
turn together); equivariance *tests* instead rebuild graphs from rotated structures.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Batch


def random_orthogonal(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """``[n, 3, 3]`` Haar-random orthogonal matrices (QR of a Gaussian, sign-fixed), half of them reflections."""
    a = torch.randn(n, 3, 3, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def rotate_batch(batch: Batch, q: torch.Tensor) -> Batch:
    """Apply per-graph orthogonal ``q`` ``[B, 3, 3]`` to a batch in place and return it: edge vectors, lattices,
    symmetry operations (``Q S Qᵀ``) and tensor targets (``Q y Qᵀ``) all turn."""
    q = q.to(batch.edge_vec.device)
    node_graph = batch.batch
    edge_graph = node_graph[batch.edge_index[1]]
    batch.edge_vec = torch.einsum("eij,ej->ei", q[edge_graph].to(batch.edge_vec.dtype), batch.edge_vec)
    batch.lattice = q.to(batch.lattice.dtype) @ batch.lattice
    batch.reduced_lattice = q.to(batch.reduced_lattice.dtype) @ batch.reduced_lattice
    if getattr(batch, "primitive_lattice", None) is not None:
        batch.primitive_lattice = q.to(batch.primitive_lattice.dtype) @ batch.primitive_lattice
    owner = torch.repeat_interleave(torch.arange(q.size(0), device=q.device), batch.num_sym_ops)
    qo = q[owner].to(batch.sym_ops.dtype)
    batch.sym_ops = qo @ batch.sym_ops @ qo.transpose(-1, -2)
    for name in ("y", "y_total", "y_electronic", "y_ionic"):  # the target and its parts turn with the crystal
        y = getattr(batch, name, None)
        if y is not None and y.dim() == 3:
            qy = q.to(y.dtype)
            setattr(batch, name, qy @ y @ qy.transpose(-1, -2))
    return batch
