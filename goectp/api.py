"""Public entry points: ``build_model``, ``load_model``, ``predict``, and the ensemble wrapper."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from goectp.graph import build_crystal_graph
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.structures import load_structures


def assets_dir() -> Path:
    """``$GOECTP_ASSETS`` or the repository's ``assets/`` folder."""
    env = os.environ.get("GOECTP_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "assets"


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_model(variant: str = "goectp", **config: Any) -> GoeCTP:
    """Build a GoeCTP model: ``variant`` is 'goectp', 'mat' or 'icom'; other keywords go to :class:`GoeCTPConfig`."""
    return GoeCTP(GoeCTPConfig(variant=variant, **config))


class Ensemble(nn.Module):
    """Several models with the same architecture; ``forward`` returns the member predictions ``[M, B, 3, 3]``."""

    def __init__(self, members: Sequence[GoeCTP], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.names = list(names or [f"member{i}" for i in range(len(members))])
        self.config = members[0].config

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:  # noqa: ANN001
        return torch.stack([m(batch, use_frame=use_frame) for m in self.members])

    def backbone_prediction(self, batch) -> torch.Tensor:  # noqa: ANN001
        return self.forward(batch, use_frame=False)


def save_checkpoint(path: str | Path, model: GoeCTP, **meta: Any) -> None:
    """Save weights together with the config (and any metadata: metrics, seeds, epoch)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": meta}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> GoeCTP:
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    if "config" not in ckpt or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a GoeCTP checkpoint (missing 'config' or 'state_dict')")
    model = GoeCTP(GoeCTPConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.meta = ckpt.get("meta", {})
    return model.eval()


def available_models() -> list[str]:
    """Names of the models shipped in ``assets/models`` (folders holding ``*.pt`` members)."""
    root = assets_dir() / "models"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.pt"))) if root.exists() else []


def load_model(path_or_name: str | Path = "default", member: int | None = None) -> GoeCTP | Ensemble:
    """Load a checkpoint file, a folder of checkpoints (an ensemble), or a model shipped in ``assets/models``.

    ``member`` picks a single member of an ensemble.
    """
    path = Path(path_or_name)
    if not path.exists():
        named = assets_dir() / "models" / str(path_or_name)
        if not named.exists():
            raise FileNotFoundError(
                f"no checkpoint or shipped model named {str(path_or_name)!r}; shipped models: {available_models()}"
            )
        path = named
    if path.is_file():
        return load_checkpoint(path)
    files = sorted(path.glob("*.pt"))
    if not files:
        raise FileNotFoundError(f"{path} holds no *.pt checkpoints")
    if member is not None:
        return load_checkpoint(files[member])
    ens = Ensemble([load_checkpoint(f) for f in files], [f.stem for f in files]).eval()
    return ens


def graphs_for(structures: Any, model: nn.Module, max_sites: int = 500) -> list:
    """Validated structures → crystal graphs with the model's neighbour count, and the pretrained node features
    (``x_extra``) when the model uses any (``config.node_features``, e.g. CHGNet: needs ``[foundation]``)."""
    k = model.config.k_neighbors
    loaded = load_structures(structures, max_sites)
    graphs = [build_crystal_graph(s, k=k, max_sites=max_sites) for s in loaded]
    name = getattr(model.config, "node_features", None)
    if name and graphs:
        from goectp.features import with_node_features

        graphs = with_node_features(graphs, loaded, name)
    return graphs


@torch.no_grad()
def predict_graphs(graphs: list, model: nn.Module, device: str | torch.device | None = None, batch_size: int = 64,
                   use_frame: bool | None = None) -> np.ndarray:
    """Predict from prebuilt graphs: ``[n, 3, 3]`` (or ``[M, n, 3, 3]`` for an ensemble)."""
    dev = default_device(device)
    model = model.to(dev).eval()
    if len(graphs) == 0:  # nothing to predict: an empty array of the right shape
        shape = (0,) if model.config.head == "scalar" else (0, 3, 3)
        return np.zeros((len(model.members), *shape) if isinstance(model, Ensemble) else shape)
    outs = []
    for i in range(0, len(graphs), batch_size):
        batch = Batch.from_data_list(graphs[i : i + batch_size]).to(dev)
        outs.append(model(batch, use_frame=use_frame).double().cpu())
    axis = 1 if isinstance(model, Ensemble) else 0
    out = torch.cat(outs, dim=axis).numpy()
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the model produced NaN or infinite values for at least one structure")
    return out


def predict(structures: Any, model: nn.Module | str | None = None, device: str | torch.device | None = None,
            batch_size: int = 64, return_std: bool = False, use_frame: bool | None = None, max_sites: int = 500):
    """Predict dielectric tensors.

    Args:
        structures: a pymatgen ``Structure``, ASE ``Atoms``, CIF/POSCAR/extxyz path, or a list of them.
        model: a model, an :class:`Ensemble`, or a name/path for :func:`load_model` (default: ``"default"``).
        device: torch device; CUDA is used when available and nothing is given.
        return_std: for an ensemble, also return the member standard deviation.
        use_frame: ``False`` runs the non-equivariant backbone alone (for demonstrations).

    Returns:
        ``(n, 3, 3)`` array (the ensemble mean for an ensemble), and ``(n, 3, 3)`` std if ``return_std``.
    """
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or "default")
    graphs = graphs_for(structures, model, max_sites=max_sites)
    out = predict_graphs(graphs, model, device=device, batch_size=batch_size, use_frame=use_frame)
    if isinstance(model, Ensemble):
        mean, std = out.mean(axis=0), out.std(axis=0)
    else:
        mean, std = out, np.zeros_like(out)
    return (mean, std) if return_std else mean
