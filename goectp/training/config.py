"""Training settings as a dataclass (saved inside every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """The paper's protocol by default: Huber loss, AdamW (wd 1e-5), lr 1e-3 with polynomial decay, 200 epochs,
    batch 64."""

    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    lr_end: float = 1e-5
    lr_power: float = 1.0
    weight_decay: float = 1e-5
    huber_delta: float = 1.0
    target: str = "total"
    split_seed: int = 0
    seed: int = 0
    max_abs: float | None = None  # drop records with any |component| >= max_abs (DTNet/GoeCTP: 100)
    augment_rotations: bool = False  # random O(3) rotations of every batch (for the no-frame baseline)
    grad_clip: float | None = 10.0
    device: str | None = None
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)
