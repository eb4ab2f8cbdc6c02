"""Training settings as a dataclass (saved inside every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

LOSSES = ("huber", "mse")


@dataclass
class TrainConfig:
    """The paper's protocol by default: Huber loss, AdamW (wd 1e-5), lr 1e-3 with polynomial decay, 200 epochs,
    batch 64."""

    #: training epochs (the learning-rate schedule runs over all of them)
    epochs: int = 200
    #: structures per batch
    batch_size: int = 64
    #: peak AdamW learning rate
    lr: float = 1e-3
    #: learning rate at the end of the polynomial decay
    lr_end: float = 1e-5
    #: power of the polynomial decay (1 = linear)
    lr_power: float = 1.0
    #: AdamW weight decay
    weight_decay: float = 1e-5
    #: training loss on the 9 components: huber (the paper's) or mse (squared error: large errors not flattened)
    loss: str = "huber"
    #: the Huber loss's delta
    huber_delta: float = 1.0
    #: weight of an extra loss term on the mean eigenvalue ε̄ = tr ε / 3: its relative error |ε̄_pred − ε̄| / ε̄,
    #: which orders crystals by ε̄ (a plain tensor head only); 0 leaves the paper's loss
    relative_mean_weight: float = 0.0
    #: the tensor to learn: total, electronic or ionic
    target: str = "total"
    #: seed of the random 80/10/10 split
    split_seed: int = 0
    #: seed of the weights, batch order and augmentation (the CLI uses the split seed unless given)
    seed: int = 0
    #: drop train/val records with any |component| >= this (DTNet/GoeCTP: 100); none keeps all
    max_abs: float | None = None
    #: random O(3) rotations of every batch (for the no-frame baseline)
    augment_rotations: bool = False
    #: evaluate and save an exponential moving average of the weights with this decay per step (e.g. 0.99); none
    #: uses the raw weights (the paper's)
    ema_decay: float | None = None
    #: clip the gradient norm to this; none disables
    grad_clip: float | None = 10.0
    #: cpu, cuda, ... (none: cuda when available)
    device: str | None = None
    #: progress bar (off: a line every 10 epochs)
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):  # 0 epochs divided by zero in the learning-rate schedule
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.relative_mean_weight < 0:
            raise ValueError(f"relative_mean_weight must be >= 0, got {self.relative_mean_weight}")
        if self.relative_mean_weight and self.target == "ionic":  # the ionic ε̄ can be 0: no relative error
            raise ValueError("relative_mean_weight needs a target with ε̄ > 0 (total or electronic), not ionic")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or none, got {self.ema_decay}")

    def to_dict(self) -> dict:
        """The fields as a plain dict (stored in checkpoints and ``metrics.json``)."""
        return asdict(self)
