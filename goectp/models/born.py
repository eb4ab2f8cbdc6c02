r"""Born effective charges from the GoeCTP backbone: a per-atom rank-2 head, exactly O(3)-equivariant.

.. math::
    Z^*_i = \mathcal{A}\Big[\mathcal{S}\Big[\frac{1}{K} \sum_{k} (Q_k F)\, z_i\big((Q_k F)^{\mathsf T} X\big)\,
            (Q_k F)^{\mathsf T} + q_{Z_i} I\Big]\Big]

``z_i`` (``[3, 3]``, not symmetric: ``Z*_{ac} = ∂F_c/∂E_a``) is an MLP of atom ``i``'s node features after the
message layers, read in the canonical frame of copy ``k``; ``F`` is the polar frame and ``Q_k`` the frames the
lattice leaves ambiguous (as for the dielectric tensor: :mod:`goectp.canonical`); ``q_Z`` is a learned isotropic
charge per element (the nominal-charge prior). ``𝒮`` averages over the space group, atom permutations included
(:mod:`goectp.physics.site_symmetry`: symmetric atoms get related charges), and ``𝒜`` subtracts the cell mean, so
the acoustic sum rule ``Σ_i Z*_i = 0`` holds exactly. Rotating or reflecting the crystal by ``R`` turns every
``Q_k F`` into ``R Q_k F`` while ``z_i`` is unchanged, so ``Z*_i → R Z*_i Rᵀ``; permuting the sites permutes the
output.

Graphs need the space-group operations per atom: :func:`with_site_operations` adds ``site_src``, ``site_dst`` (atom
``site_src[e]`` is sent to ``site_dst[e]`` by the operation whose Cartesian rotation is ``site_rot[e]``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter

from goectp.elements import MAX_Z
from goectp.models.goectp import GoeCTP, GoeCTPConfig


class BornChargeModel(nn.Module):
    """``forward(batch)`` → Born effective charges ``[N, 3, 3]`` (e) in the input's Cartesian frame."""

    def __init__(self, config: GoeCTPConfig | None = None, **kwargs) -> None:
        super().__init__()
        cfg = config or GoeCTPConfig(**kwargs)
        self.config = cfg
        self.backbone = GoeCTP(cfg)
        self.backbone.head = nn.Identity()  # the graph-level head is not used: the charges are per atom
        d = cfg.hidden
        self.node_head = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 9))
        self.charge = nn.Embedding(MAX_Z + 1, 1)  # isotropic charge per element (set from data: set_charges)
        nn.init.zeros_(self.charge.weight)
        self.register_buffer("scale", torch.ones(()))

    def set_charges(self, charges: dict[int, float], scale: float = 1.0) -> None:
        """Initial isotropic charges per atomic number (e.g. the training mean of tr(Z*)/3) and the output scale."""
        with torch.no_grad():
            for z, q in charges.items():
                self.charge.weight[int(z), 0] = float(q)
            self.scale.fill_(float(scale))

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:
        states = self.backbone.node_states(batch, use_frame)
        z_local = self.node_head(states.h).view(-1, 3, 3) * self.scale  # [N', 3, 3] canonical frame
        frame = states.frame[states.node_copy]  # [N', 3, 3]
        z_cart = frame @ z_local @ frame.transpose(-1, -2)  # F z Fᵀ
        n = batch.z.size(0)
        if states.node_src is not None:  # mean over each atom's frame copies
            z_cart = scatter(z_cart, states.node_src, dim=0, dim_size=n, reduce="mean")
        eye = torch.eye(3, dtype=z_cart.dtype, device=z_cart.device)
        born = z_cart + self.charge(batch.z).to(z_cart.dtype)[:, :, None] * eye  # [N, 3, 3]
        if getattr(batch, "site_src", None) is not None:
            rot = batch.site_rot.to(born.dtype)
            turned = rot @ born[batch.site_src] @ rot.transpose(-1, -2)
            born = scatter(turned, batch.site_dst, dim=0, dim_size=n, reduce="mean")
        node_graph = batch.batch if getattr(batch, "batch", None) is not None else batch.z.new_zeros(n)
        mean = scatter(born, node_graph, dim=0, reduce="mean")  # [B, 3, 3]
        return born - mean[node_graph]  # Σ_i Z*_i = 0 per crystal


def with_site_operations(graph, symprec: float = 0.01):
    """The graph with its space group's per-atom operations (``site_src``, ``site_dst`` ``[S·N]``, ``site_rot``
    ``[S·N, 3, 3]``), from its own (canonical) cell."""
    from goectp.physics.site_symmetry import site_operations

    lattice_rows = graph.lattice[0].double().numpy().T
    rotations, perms = site_operations(lattice_rows, graph.frac.double().numpy(), graph.z.tolist(), symprec)
    s, n = perms.shape
    graph.site_src = torch.from_numpy(np.tile(np.arange(n), s)).long()
    graph.site_dst = torch.from_numpy(perms.reshape(-1)).long()
    graph.site_rot = torch.from_numpy(np.repeat(rotations, n, axis=0))
    return graph


class BornEnsemble(nn.Module):
    """The mean of several :class:`BornChargeModel` (e.g. one per split): still equivariant, sum rule still exact."""

    def __init__(self, members: list[BornChargeModel], names: list[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("a Born-charge ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.names = list(names or [f"member{i}" for i in range(len(members))])
        self.config = members[0].config

    def member_charges(self, batch) -> torch.Tensor:
        """``[M, N, 3, 3]``: every member's charges."""
        return torch.stack([m(batch) for m in self.members])

    def forward(self, batch) -> torch.Tensor:
        return self.member_charges(batch).mean(dim=0)
