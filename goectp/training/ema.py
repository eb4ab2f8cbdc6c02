"""Exponential moving average of a model's weights (Polyak averaging), evaluated and saved instead of the raw ones.

After every optimiser step ``n``: ``θ̄ ← d θ̄ + (1 − d) θ`` with ``d = min(decay, (1 + n) / (10 + n))``, so the
first steps are not dominated by the initial weights. Integer buffers are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ExponentialMovingAverage:
    """A frozen copy of ``model`` whose floating-point parameters and buffers track the EMA of ``model``'s."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates."""
        return min(self.decay, (1 + self.steps) / (10 + self.steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: average ``model``'s current weights into the copy."""
        self.steps += 1
        d = self.current_decay()
        source = model.state_dict()
        for name, avg in self.model.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.lerp_(source[name].to(avg.dtype), 1.0 - d)  # avg + (1 − d)(θ − avg) = d avg + (1 − d) θ
            else:
                avg.copy_(source[name])

    def state_dict(self) -> dict:
        """``{"decay", "steps", "weights"}``: what ``last.pt`` stores to resume the average."""
        return {"decay": self.decay, "steps": self.steps, "weights": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.steps = float(state["decay"]), int(state["steps"])
        self.model.load_state_dict(state["weights"])
