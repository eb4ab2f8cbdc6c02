"""Shared fixtures: the shared data directory (fails in CI when missing, skips elsewhere) and small crystals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Tests use tiny models: one thread is as fast and leaves the other core free.
torch.set_num_threads(1)


def _find_shared_data() -> Path | None:
    """The data directory of :func:`goectp.data.paths.find_data_dir` when it holds the dielectric data set."""
    from goectp.data.paths import DIELECTRIC_FILE, find_data_dir

    path = find_data_dir()
    return path if path is not None and (path / DIELECTRIC_FILE).exists() else None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real datasets. In CI (CI=true) their absence is a failure, on a user's machine a skip."""
    path = _find_shared_data()
    if path is None:
        msg = "shared data not found: set GOECTP_DATA or place the data in ../shared/data"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture()
def perovskite():
    """Cubic SrTiO3 (Pm-3m, a = 3.905 Å)."""
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


@pytest.fixture()
def triclinic():
    """A low-symmetry triclinic cell with random positions (fixed seed)."""
    from pymatgen.core import Lattice, Structure

    gen = np.random.default_rng(7)
    return Structure(
        Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 104), ["Ba", "Ti", "O", "O", "O", "Li"], gen.random((6, 3))
    )


@pytest.fixture()
def write_sum_family(tmp_path):
    """``write(hidden)`` → ``tmp_path/models`` holding ``electronic/split{0,1}.pt`` (ε∞ networks), ``decomposed/
    split{0,1}.pt`` (sum members, each with a copy of its split's ε∞ network and an ionic one) and
    ``combined/members.json`` listing the decomposed files: the shipped layout before ``goectp ensemble share``."""
    import json

    from goectp.api import build_model
    from goectp.checkpoint import checkpoint_dict, sum_checkpoint_dict
    from goectp.data.paths import sha256_file

    def write(hidden: int) -> Path:
        models = tmp_path / "models"
        for folder in ("electronic", "decomposed", "combined"):
            (models / folder).mkdir(parents=True)
        for k in (0, 1):
            nets = {}
            for target, seed in (("electronic", 10 + 2 * k), ("ionic", 11 + 2 * k)):
                torch.manual_seed(seed)
                net = build_model("goectp", hidden=hidden, num_rbf=8).eval()
                net.meta = {"target": target, "split_seed": k, "data_sha256": "d"}
                nets[target] = checkpoint_dict(net, **net.meta)
            torch.save(nets["electronic"], models / "electronic" / f"split{k}.pt")
            torch.save(sum_checkpoint_dict(nets["electronic"], nets["ionic"]), models / "decomposed" / f"split{k}.pt")
        members = [
            {"file": f"../decomposed/split{k}.pt", "sha256": sha256_file(models / "decomposed" / f"split{k}.pt")}
            for k in (0, 1)
        ]
        (models / "combined" / "members.json").write_text(json.dumps({"members": members}))
        return models

    return write
