"""``assets/physics/physics.json``: the description of the shipped ``physics`` model (:class:`PhysicsConfig`), read
without loading any network, and the force field it names (:func:`shipped_force_field`), which the physics term uses
when none is given (:func:`goectp.physics.predict.ionic_physics`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goectp.physics.combine import GATE_SIZE, RULES, combine_physics

PHYSICS_FILE = Path("physics") / "physics.json"
#: The name under which ``goectp.predict``, ``goectp.predict_summary`` and ``goectp predict --model`` reach it.
PHYSICS_MODEL_NAME = "physics"
#: The force field when no physics model ships (and physics.json's default): SevenNet-0.
DEFAULT_FORCE_FIELD = "sevennet"


@dataclass(frozen=True)
class PhysicsConfig:
    """What ``physics.json`` holds (see the module docstring)."""

    rule: str
    scale: float
    weight: float
    total_model: str = "default"
    electronic_model: str = "electronic"
    born_model: str = "physics/born-charges"
    force_field: str = DEFAULT_FORCE_FIELD
    max_sites: int = 40
    gate: tuple[float, ...] | None = None  # θ of the ``gated`` rule (:func:`goectp.physics.combine.gated`)
    #: under ``gated``: whether a crystal with unstable modes keeps the term of its stable modes (else the learned ε)
    keep_unstable: bool = True
    #: ``(k_term, k_unstable)``: factors on the default's calibrated σ for crystals with the physics term and for
    #: crystals left without it for their unstable modes, fitted on validation (``physics_stack.py``); a crystal
    #: without force constants (a cell over ``max_sites``) keeps the default's σ; ``None``: the default's σ for all
    sigma_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"physics.json: unknown rule {self.rule!r} (one of {RULES})")
        if self.rule == "gated" or self.gate is not None:
            gate = self.gate
            ok = isinstance(gate, (list, tuple)) and len(gate) == GATE_SIZE
            if not ok or not all(isinstance(v, (int, float)) and np.isfinite(v) and abs(v) <= 50 for v in gate):
                raise ValueError(f"physics.json: gate must be {GATE_SIZE} numbers in [-50, 50], got {gate!r}"[:300])
            object.__setattr__(self, "gate", tuple(float(v) for v in gate))
        if not isinstance(self.keep_unstable, bool):
            raise ValueError(f"physics.json: keep_unstable must be true or false, got {self.keep_unstable!r}"[:300])
        for name in ("scale", "weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and 0 <= value <= 10):
                raise ValueError(f"physics.json: {name} must be a number in [0, 10], got {value!r}")
        if self.sigma_scale is not None:
            ks = self.sigma_scale
            ok = isinstance(ks, (list, tuple)) and len(ks) == 2
            number = lambda k: isinstance(k, (int, float)) and not isinstance(k, bool)  # noqa: E731
            if not ok or not all(number(k) and np.isfinite(k) and 0 < k <= 10 for k in ks):
                raise ValueError(f"physics.json: sigma_scale must be 2 numbers in (0, 10], got {ks!r}"[:300])
            object.__setattr__(self, "sigma_scale", (float(ks[0]), float(ks[1])))
        if not (isinstance(self.max_sites, int) and 1 <= self.max_sites <= 500):
            raise ValueError(f"physics.json: max_sites must be an integer in [1, 500], got {self.max_sites!r}")

    @property
    def keeps_unstable(self) -> bool:
        """Whether a crystal with an unstable mode keeps a physics term (its stable modes): the ``gated`` rule with
        ``keep_unstable`` (the choice made on validation; the other rules leave such crystals to the learned ε)."""
        return self.rule == "gated" and self.keep_unstable

    def sigma_factor(self, used: bool, unstable: bool = False) -> float:
        """The factor on the default's calibrated σ for a crystal with the physics term (``used``), without it for its
        ``unstable`` modes, or without it otherwise (1: its prediction is the default's, and so is its σ)."""
        if self.sigma_scale is None or not (used or unstable):
            return 1.0
        return self.sigma_scale[0 if used else 1]

    def combine(self, total: np.ndarray, electronic: np.ndarray, term: Any, usable: bool) -> np.ndarray:
        """``[3, 3]``: this rule on one crystal's learned ``total`` and ``electronic`` tensors and its
        :class:`~goectp.physics.predict.IonicPhysics` ``term`` (``None`` when there is none)."""
        physics = term.tensor if term is not None else np.full((3, 3), np.nan)
        unstable = term.modes.num_unstable if term is not None else 0
        softest = term.modes.softest_thz if term is not None else float("nan")
        return combine_physics(
            self.rule,
            np.asarray(total, float).reshape(1, 3, 3),
            np.asarray(electronic, float).reshape(1, 3, 3),
            physics[None],
            np.array([usable]),
            self.scale,
            self.weight,
            gate=self.gate,
            unstable=np.array([unstable]),
            lowest_thz=np.array([softest]),
        )[0]

    @classmethod
    def load(cls, path: str | Path) -> PhysicsConfig:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
            return cls(**fields)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a usable physics model description ({exc})"[:400]) from exc


def shipped_force_field() -> str:
    """The force field of the shipped ``physics`` model (``assets/physics/physics.json``), or ``"sevennet"`` when
    none ships: what the physics term uses when no force field is named, so that ``goectp predict --modes`` and
    ``predict_summary(physics=True)`` show the term the ``physics`` model adds."""
    from goectp.registry import assets_dir

    path = assets_dir() / PHYSICS_FILE
    return PhysicsConfig.load(path).force_field if path.is_file() else DEFAULT_FORCE_FIELD
