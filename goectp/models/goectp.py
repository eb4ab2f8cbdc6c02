"""GoeCTP: a non-equivariant crystal-graph network ``g`` made O(3)-equivariant by the polar frame.

    f(X) = F g(Fᵀ X) Fᵀ

``g`` sees only canonical edge vectors ``Fᵀ r_ij`` (and invariant features), so ``g(Fᵀ R X) = g(Fᵀ X)`` for any
orthogonal ``R`` (because ``F → R F``), and the tensor head's ``F ε̃ Fᵀ`` turns with the crystal.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as fn
from torch_geometric.utils import scatter

from goectp.canonical import uses_canonical_cell
from goectp.elements import MAX_Z, element_feature_dim, element_feature_table
from goectp.frame import polar_frame_torch
from goectp.models.registry import VARIANTS
from goectp.nn import GaussianRBF, LatticeEdgeLayer, MatformerLayer, MLPMessageLayer, ScalarHead, TensorHead
from goectp.symmetry import symmetrize_tensors

#: ``(lowest, highest)`` of GoeCTPConfig's integer sizes. The bounds are far above anything the project trains
#: (hidden 64-128, 1-4 layers, 4 heads, 64 RBFs, k = 16, at most 243 node features) and low enough that a damaged
#: or hostile checkpoint config cannot ask for millions of layers or a terabyte weight matrix.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "hidden": (1, 4096),
    "num_layers": (1, 64),
    "heads": (1, 64),
    "num_rbf": (2, 1024),  # GaussianRBF needs two centres
    "k_neighbors": (1, 128),
    "node_feature_dim": (0, 4096),
}
#: Largest ``rbf_cutoff`` (Å): the neighbour distances of a crystal graph are a few Å (shipped models: 8).
MAX_RBF_CUTOFF = 50.0
#: The string options of GoeCTPConfig besides ``variant`` (:data:`~goectp.models.registry.VARIANTS`).
CHOICES: dict[str, tuple[str, ...]] = {
    "atom_features": ("cgcnn", "embedding"),
    "pooling": ("sum", "mean"),
    "cell_reduction": ("none", "niggli", "primitive"),
    "head": ("tensor", "scalar"),
}
#: The on/off options of GoeCTPConfig.
FLAGS: tuple[str, ...] = (
    "symmetrize",
    "positive_definite",
    "use_frame",
    "sign_average",
    "frame_average",
    "decompose",
    "log_head",
)


def _shown(value: object) -> str:
    """``repr(value)`` cut to a length fit for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class GoeCTPConfig:
    """Architecture settings. ``num_layers=None`` means the paper's depth (1 for goectp, 4 for mat/icom)."""

    variant: Literal["goectp", "mat", "icom"] = "goectp"
    hidden: int = 128
    num_layers: int | None = None
    heads: int = 4
    num_rbf: int = 64
    rbf_cutoff: float = 8.0
    atom_features: Literal["cgcnn", "embedding"] = "cgcnn"
    pooling: Literal["sum", "mean"] = "mean"
    cell_reduction: Literal["none", "niggli", "primitive"] = "primitive"
    symmetrize: bool = True
    positive_definite: bool = False
    use_frame: bool = True
    head: Literal["tensor", "scalar"] = "tensor"
    k_neighbors: int = 16
    #: With a cell reduction, also average the pooled features over the reduced basis' sign (±F): removes the
    #: last cell-choice ambiguity at twice the message-passing cost (see ``embed``).
    sign_average: bool = False
    #: With ``cell_reduction='primitive'`` and ``symmetrize``: graphs of the canonical cell, and the prediction
    #: averaged over the frames ``Q F`` its lattice leaves ambiguous (``frame_ops``, see :mod:`goectp.canonical`):
    #: exact invariance to the choice of unit cell.
    frame_average: bool = True
    #: Pretrained invariant per-atom features added to the node inputs (graphs carry ``x_extra`` ``[N, D]``):
    #: the extractor's name (e.g. 'chgnet', see :mod:`goectp.features`) and ``D``; ``None``/0 = element features only.
    node_features: str | None = None
    node_feature_dim: int = 0
    #: Two frame-averaged tensor heads, the electronic ε∞ and the ionic part, summed into the total (trained on
    #: both parts; ``GoeCTP.forward_parts`` returns them apart, e.g. for the refractive index from ε∞).
    decompose: bool = False
    #: The head predicts ``log ε`` (a symmetric matrix) and ``ε = exp(log ε)``: positive definite, and trained on
    #: the matrix logarithm of the target, so a relative error weighs the same at ε̄ = 5 and at ε̄ = 200.
    log_head: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check every field (type, choice, range: :data:`SIZE_LIMITS`); a ``ValueError`` names the field."""
        if not isinstance(self.variant, str) or self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {_shown(self.variant)}; choose one of {VARIANTS}")
        if self.num_layers is None:
            self.num_layers = 1 if self.variant == "goectp" else 4
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {_shown(value)}")
        for name in FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {_shown(getattr(self, name))}")
        for name, (low, high) in SIZE_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, got {_shown(value)}")
            setattr(self, name, int(value))  # e.g. a NumPy integer: a plain int, which a checkpoint can hold
        cutoff = self.rbf_cutoff  # NaN and ±inf fail the range test
        if not isinstance(cutoff, numbers.Real) or isinstance(cutoff, bool) or not 0 < cutoff <= MAX_RBF_CUTOFF:
            raise ValueError(
                f"rbf_cutoff must be a number of Å above 0 and at most {MAX_RBF_CUTOFF:g}, got {_shown(cutoff)}"
            )
        if self.variant != "goectp" and self.hidden % self.heads:
            raise ValueError(
                f"hidden ({self.hidden}) must be divisible by heads ({self.heads}) for variant {self.variant!r}"
            )
        if self.node_features is not None and (not isinstance(self.node_features, str) or len(self.node_features) > 64):
            raise ValueError(f"node_features must be an extractor's name or none, got {_shown(self.node_features)}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be a dict, got {_shown(self.extra)}")
        if (self.decompose or self.log_head) and self.head != "tensor":
            raise ValueError("decompose and log_head are options of the tensor head (head='tensor')")
        if self.log_head and (self.decompose or self.positive_definite):
            raise ValueError("log_head is its own positive-definite form: not with decompose or positive_definite")
        if bool(self.node_features) != (self.node_feature_dim > 0):
            raise ValueError(
                "node_features (the extractor's name) and node_feature_dim > 0 go together, got "
                f"node_features={self.node_features!r}, node_feature_dim={self.node_feature_dim}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class ModelOutput(NamedTuple):
    """One forward pass: what :func:`goectp.inference.run_model` needs for the prediction, σ and the OOD flag.

    Attributes:
        prediction: ``[B, 3, 3]`` (scalar head: ``[B]``), what ``forward`` returns.
        embedding: ``[B, d]`` pooled node features (mean over the frames): the invariant summary compared with
            the training set's (:mod:`goectp.uncertainty`).
        parts: the tensor head's outputs before they are combined, e.g. ``{"electronic", "ionic"}`` (``[B, 3, 3]``).
    """

    prediction: torch.Tensor
    embedding: torch.Tensor
    parts: dict[str, torch.Tensor]


class NodeStates(NamedTuple):
    """Node features of every frame copy of a batch (``V`` graph copies, ``N'`` node copies).

    Attributes:
        h: ``[N', d]`` node features after the message layers, in the canonical frame of their copy.
        frame: ``[V, 3, 3]`` the frame ``Q F`` of each copy.
        owner: ``[V]`` the graph of each copy (``None`` without frame averaging: ``V = B``, ``N' = N``).
        node_src: ``[N']`` the original node of each node copy (``None`` without frame averaging).
        node_copy: ``[N']`` the copy each node belongs to.
    """

    h: torch.Tensor
    frame: torch.Tensor
    owner: torch.Tensor | None
    node_src: torch.Tensor | None
    node_copy: torch.Tensor


class GoeCTP(nn.Module):
    """Frame-averaged crystal graph network predicting a symmetric 3x3 tensor (or an invariant scalar)."""

    def __init__(self, config: GoeCTPConfig | None = None, **kwargs) -> None:
        super().__init__()
        cfg = config or GoeCTPConfig(**kwargs)
        self.config = cfg
        d = cfg.hidden
        if cfg.atom_features == "cgcnn":
            self.register_buffer("element_table", torch.from_numpy(element_feature_table()))
            self.atom_embed = nn.Linear(element_feature_dim(), d)
        else:
            self.atom_embed = nn.Embedding(MAX_Z + 1, d)
        # foundation-model features: LayerNorm (their scale is arbitrary) then a linear map added to h
        self.node_feature_embed = (
            nn.Sequential(nn.LayerNorm(cfg.node_feature_dim), nn.Linear(cfg.node_feature_dim, d))
            if cfg.node_feature_dim
            else None
        )
        self.rbf = GaussianRBF(0.0, cfg.rbf_cutoff, cfg.num_rbf)
        # edge input: RBF(|r|) and the canonical unit vector r/|r| (this is what makes g orientation-aware)
        self.edge_embed = nn.Sequential(nn.Linear(cfg.num_rbf + 3, d), nn.SiLU(), nn.Linear(d, d))
        if cfg.variant == "goectp":
            self.layers = nn.ModuleList(MLPMessageLayer(d, d) for _ in range(cfg.num_layers))
        else:
            self.layers = nn.ModuleList(MatformerLayer(d, cfg.heads) for _ in range(cfg.num_layers))
        self.lattice_edge = LatticeEdgeLayer(d) if cfg.variant == "icom" else None
        self.head = TensorHead(d, cfg.positive_definite) if cfg.head == "tensor" else ScalarHead(d)
        # decompose: ``head`` predicts the electronic part, ``ionic_head`` the ionic one
        self.ionic_head = TensorHead(d) if cfg.decompose else None

    # ----------------------------------------------------------------------------------------------------------
    def frames(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(F, L)`` per graph ``[B, 3, 3]``: the polar frame and the lattice it came from.

        ``cell_reduction``: 'none' = the input cell; 'niggli' = its Niggli-reduced basis (independent of the input
        basis); 'primitive' = the Niggli basis of the primitive lattice (also independent of supercells).
        """
        lattice = {
            "none": batch.lattice,
            "niggli": batch.reduced_lattice,
            "primitive": getattr(batch, "primitive_lattice", None),
        }[self.config.cell_reduction]
        if lattice is None:
            raise ValueError("cell_reduction='primitive' needs graphs with primitive_lattice: rebuild the graphs")
        with torch.no_grad():
            frame, _ = polar_frame_torch(lattice.double())
        return frame, lattice

    def embed(self, batch, use_frame: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``g`` up to the pooled features. Returns ``(pooled [B, d], frame [B, 3, 3])``.

        With frame averaging the pooled features are the mean over the graph's frames (an invariant summary, e.g.
        for a distance to the training set); the prediction itself averages the *tensors* (see :meth:`forward`).
        """
        pooled, frames, owner = self._embed_frames(batch, use_frame)
        num_graphs = batch.lattice.size(0)
        if owner is not None:
            pooled = scatter(pooled, owner, dim=0, dim_size=num_graphs, reduce="mean")
            frames = self.frames(batch)[0].to(pooled.dtype)
        return pooled, frames

    def _averages_frames(self, batch, use_frame: bool) -> bool:
        return (
            use_frame
            and uses_canonical_cell(self.config)
            and getattr(batch, "num_frame_ops", None) is not None
            and bool((batch.num_frame_ops > 1).any())
        )

    def _embed_frames(self, batch, use_frame: bool | None = None):
        """Pooled features per frame: ``(pooled [V, d], frame [V, 3, 3], owner [V] or None)`` (see
        :meth:`node_states`)."""
        states = self.node_states(batch, use_frame)
        pooled = scatter(states.h, states.node_copy, dim=0, dim_size=states.frame.size(0), reduce=self.config.pooling)
        return pooled, states.frame, states.owner

    def node_states(self, batch, use_frame: bool | None = None) -> NodeStates:
        """Node features after the message layers, per frame (:class:`NodeStates`).

        Without frame averaging ``V = B`` and ``owner`` is ``None``. With it, graph ``b`` is evaluated once per
        frame ``Q_k F_b`` (``k < K_b``, ``V = Σ K_b``), and ``owner[v]`` is the graph of copy ``v``.

        With ``use_frame=False`` the frame is the identity: the backbone then sees raw Cartesian vectors and is
        *not* equivariant (this is the "g alone" of the explorer and the augmentation baseline).

        ``sign_average`` (older alternative, superseded by frame averaging): the pooled features averaged over
        ``±F``, ``p = ½ [p(Fᵀ X) + p(-Fᵀ X)]``.
        """
        use_frame = self.config.use_frame if use_frame is None else use_frame
        dtype = next(self.parameters()).dtype
        frame, lattice = self.frames(batch)
        if not use_frame:
            frame = torch.eye(3, dtype=frame.dtype, device=frame.device).expand_as(frame)
        node_graph = batch.batch if getattr(batch, "batch", None) is not None else batch.z.new_zeros(batch.z.size(0))
        num_graphs = frame.size(0)
        edge_index, edge_vec, owner = batch.edge_index, batch.edge_vec, None
        node_src = None
        if self._averages_frames(batch, use_frame):
            owner, node_src, edge_src, edge_index, node_graph = _expand_per_frame(
                batch.num_frame_ops, node_graph, batch.edge_index, num_graphs
            )
            frame = batch.frame_ops.to(frame.dtype) @ frame[owner]  # [V, 3, 3]: Q_k F
            lattice = lattice[owner]
            edge_vec = edge_vec[edge_src]
            num_graphs = owner.size(0)
        frame = frame.to(dtype)
        edge_graph = node_graph[edge_index[1]]
        # canonical coordinates: r̃ = Fᵀ r  (row vectors: r̃ᵀ = rᵀ F)
        vec = torch.einsum("ex,exy->ey", edge_vec.to(dtype), frame[edge_graph])  # [E, 3]
        canon_lat = frame.transpose(-1, -2) @ lattice.to(dtype)  # [B, 3, 3] = H (columns = canonical vectors)
        if self.config.atom_features == "cgcnn":
            h = self.atom_embed(self.element_table[batch.z].to(dtype))  # [N, d]
        else:
            h = self.atom_embed(batch.z)
        if self.node_feature_embed is not None:  # invariant per-atom inputs keep g(Fᵀ R X) = g(Fᵀ X)
            h = h + self.node_feature_embed(self._node_features(batch).to(dtype))
        if node_src is not None:
            h = h[node_src]
        radial = self._radial(batch.edge_vec.to(dtype))  # [E, d]: the same for every frame, computed once
        if node_src is not None:
            radial = radial.index_select(0, edge_src)
        out = self._message_passing(h, vec, radial, canon_lat[edge_graph], edge_index)
        if use_frame and self.config.cell_reduction != "none" and self.config.sign_average:
            flipped = self._message_passing(h, -vec, radial, canon_lat[edge_graph], edge_index)
            out = 0.5 * (out + flipped)
        return NodeStates(out, frame, owner, node_src, node_graph)

    def _radial(self, edge_vec: torch.Tensor) -> torch.Tensor:
        """The distance part of the edge embedding's first linear map, ``W_r RBF(|r|) + b`` ``[E, d]`` (invariant)."""
        first = self.edge_embed[0]
        return fn.linear(self.rbf(edge_vec.norm(dim=-1)), first.weight[:, : self.config.num_rbf], first.bias)

    def _edge_features(self, vec: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
        """``edge_embed(RBF(|r|) | r/|r|)`` ``[E, d]`` from the canonical ``vec [E, 3]`` and its ``radial`` part."""
        first, act, second = self.edge_embed
        direction = vec / vec.norm(dim=-1, keepdim=True)  # [E, 3]
        return second(act(radial + fn.linear(direction, first.weight[:, self.config.num_rbf :])))

    def _message_passing(
        self, h: torch.Tensor, vec: torch.Tensor, radial: torch.Tensor, edge_lattice: torch.Tensor, edge_index
    ) -> torch.Tensor:
        """Edge embedding and the message layers: ``h [N, d]``, canonical ``vec [E, 3]``, ``radial [E, d]``
        (:meth:`_radial`) → node features ``[N, d]``. The edge embedding is ``MLP(RBF(|r|) | r/|r|)``, its first
        linear map split into the invariant ``radial`` and the direction part."""
        e = self._edge_features(vec, radial)  # [E, d]
        for i, layer in enumerate(self.layers):
            h = layer(h, edge_index, e)
            if i == 0 and self.lattice_edge is not None:
                e = self.lattice_edge(e, vec, edge_lattice)
        return h

    def _node_features(self, batch) -> torch.Tensor:
        x = getattr(batch, "x_extra", None)
        cfg = self.config
        if x is None or x.shape != (batch.z.size(0), cfg.node_feature_dim):
            got = "none" if x is None else f"shape {tuple(x.shape)}"
            raise ValueError(
                f"this model needs {cfg.node_features!r} node features x_extra [N, {cfg.node_feature_dim}]"
                f" on its graphs (got {got}): build them with goectp.features.attach_node_features"
            )
        return x

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:
        """Tensor head: ``[B, 3, 3]`` symmetric tensors in the input's Cartesian frame; scalar head: ``[B]``.

        ``use_frame=False`` on a model trained with the frame shows ``g`` alone: the frame *and* the point-group
        symmetrisation (itself an equivariance-restoring step) are both left out.
        """
        return self.outputs(batch, use_frame).prediction

    def forward_parts(self, batch, use_frame: bool | None = None) -> dict[str, torch.Tensor]:
        """The tensor head's outputs ``[B, 3, 3]`` before they are combined, each frame-averaged and symmetrised:
        ``{"electronic", "ionic"}`` (``decompose``), ``{"log"}`` (``log_head``: ``log ε``) or ``{"total"}``."""
        return self.outputs(batch, use_frame).parts

    def outputs(self, batch, use_frame: bool | None = None) -> ModelOutput:
        """Everything one pass of message passing gives (see :class:`ModelOutput`): the prediction, the pooled
        embedding (mean over the frames, as :meth:`embed`) and the tensor head's parts."""
        pooled, frame, owner = self._embed_frames(batch, use_frame)
        num_graphs = batch.lattice.size(0)
        embedding = pooled if owner is None else scatter(pooled, owner, dim=0, dim_size=num_graphs, reduce="mean")
        if self.config.head == "scalar":
            out = self.head(pooled)
            if owner is not None:
                out = scatter(out, owner, dim=0, dim_size=num_graphs, reduce="mean")
            return ModelOutput(out, embedding, {})
        if self.config.log_head:
            heads = {"log": self.head}
        elif self.config.decompose:
            heads = {"electronic": self.head, "ionic": self.ionic_head}
        else:
            heads = {"total": self.head}
        bare_backbone = use_frame is not None and use_frame != self.config.use_frame
        parts = {}
        for name, head in heads.items():
            eps = head(pooled, frame)  # [V, 3, 3] in the input's Cartesian frame
            if owner is not None:  # frame averaging: mean over each graph's frames
                eps = scatter(eps, owner, dim=0, dim_size=num_graphs, reduce="mean")
            if self.config.symmetrize and not bare_backbone:
                eps = symmetrize_tensors(eps, batch.sym_ops, batch.num_sym_ops)
            parts[name] = _symmetric(eps)
        log_eps = parts.get("log") if self.config.log_head else None
        prediction = sum(parts.values()) if log_eps is None else _symmetric(torch.linalg.matrix_exp(log_eps))
        return ModelOutput(prediction, embedding, parts)

    def backbone_prediction(self, batch) -> torch.Tensor:
        """The non-equivariant backbone alone: the same network with the frame replaced by the identity."""
        return self.forward(batch, use_frame=False)

    def set_target_stats(self, scale: float, shift: float, part: str | None = None) -> None:
        """The target's scale and mean set on the head; ``part='ionic'`` sets the ionic head of ``decompose``."""
        head = self.ionic_head if part == "ionic" else self.head
        head.scale.fill_(float(scale))
        head.shift.fill_(float(shift))


def _symmetric(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + x.transpose(-1, -2))


def _exclusive_cumsum(x: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(x, 0) - x


def _expand_per_frame(
    num_frames: torch.Tensor, node_graph: torch.Tensor, edge_index: torch.Tensor, num_graphs: int
) -> tuple[torch.Tensor, ...]:
    """Index maps that copy graph ``b`` of a batch ``K_b`` times (one copy per frame).

    Returns ``owner [V]`` (graph of each copy), ``node_src [N']`` and ``edge_src [E']`` (the original node / edge of
    each copied one), the copies' ``edge_index [2, E']`` and ``node_graph [N']`` (copy of each node).
    """
    dev = node_graph.device
    owner = torch.repeat_interleave(torch.arange(num_graphs, device=dev), num_frames)  # [V]
    copies = torch.arange(owner.size(0), device=dev)
    n_nodes = torch.bincount(node_graph, minlength=num_graphs)
    node_ptr = _exclusive_cumsum(n_nodes)
    copy_nodes = n_nodes[owner]
    copy_node_ptr = _exclusive_cumsum(copy_nodes)
    node_copy = torch.repeat_interleave(copies, copy_nodes)  # [N']
    node_src = node_ptr[owner[node_copy]] + torch.arange(node_copy.size(0), device=dev) - copy_node_ptr[node_copy]
    edge_graph = node_graph[edge_index[1]]
    order = torch.sort(edge_graph, stable=True).indices  # edges grouped by graph
    n_edges = torch.bincount(edge_graph, minlength=num_graphs)
    copy_edges = n_edges[owner]
    edge_copy = torch.repeat_interleave(copies, copy_edges)  # [E']
    local = torch.arange(edge_copy.size(0), device=dev) - _exclusive_cumsum(copy_edges)[edge_copy]
    edge_src = order[_exclusive_cumsum(n_edges)[owner[edge_copy]] + local]
    new_index = copy_node_ptr[edge_copy] + (edge_index[:, edge_src] - node_ptr[owner[edge_copy]])
    return owner, node_src, edge_src, new_index, node_copy
