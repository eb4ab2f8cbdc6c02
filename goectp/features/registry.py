"""The feature extractors GoeCTP knows (:data:`EXTRACTORS`): name → feature size, factory, cache version.

Kept apart from :mod:`goectp.features` so that the cache (and the CLI, for its ``--node-features`` choices) can read
the registry without importing the package that re-exports the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any


def _installed(dist: str, checkpoint: str) -> Callable[[], str]:
    """Cache-version string ``<dist>-<version>-<checkpoint>`` of an extractor, without importing the package."""

    def version_string() -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"{dist}-{version(dist)}-{checkpoint}"
        except PackageNotFoundError:
            return f"{dist}-unavailable-{checkpoint}"

    return version_string


def _make_chgnet() -> Callable:
    from goectp.features.chgnet import ChgnetFeatures

    return ChgnetFeatures()


def _make_chgnet_descriptors() -> Callable:
    from goectp.features.descriptors import ChgnetDescriptorFeatures

    return ChgnetDescriptorFeatures(get_extractor("chgnet"))  # one CHGNet per process, shared


def _chgnet_descriptors_version() -> str:
    from goectp.features.descriptors import descriptor_version

    return f"{extractor_version('chgnet')}-{descriptor_version()}"


def _make_sevennet() -> Callable:
    from goectp.features.sevennet import SevennetFeatures

    return SevennetFeatures()


#: name → dim (the model's ``node_feature_dim``), factory, cache version (without loading the model)
EXTRACTORS: dict[str, dict[str, Any]] = {
    # max_z: the heaviest element the foundation model was trained with (CHGNet 0.3.0: 94 elements, H to Pu)
    "chgnet": {"dim": 128, "max_z": 94, "factory": _make_chgnet, "version": _installed("chgnet", "0.3.0-float64")},
    "chgnet-descriptors": {
        "dim": 243,
        "max_z": 94,
        "factory": _make_chgnet_descriptors,
        "version": _chgnet_descriptors_version,
    },
    "sevennet": {"dim": 128, "factory": _make_sevennet, "version": _installed("sevenn", "7net-0-inversion-mean")},
}


def max_atomic_number(name: str) -> int | None:
    """The heaviest element extractor ``name`` knows (``None``: not recorded; its own error then applies)."""
    return EXTRACTORS.get(name, {}).get("max_z")


def feature_dim(name: str) -> int:
    """The per-atom feature size of extractor ``name`` (a ``ValueError`` naming the choices if unknown)."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown node features {name!r}; available: {sorted(EXTRACTORS)}")
    return EXTRACTORS[name]["dim"]


def extractor_version(name: str) -> str:
    """The cache-version string of extractor ``name`` (without loading it)."""
    feature_dim(name)
    return EXTRACTORS[name]["version"]()


@lru_cache(maxsize=4)
def get_extractor(name: str) -> Callable:
    """The extractor object (loaded once per process)."""
    feature_dim(name)
    return EXTRACTORS[name]["factory"]()


def structure_features(structures: Sequence[Any], name: str = "chgnet") -> list:
    """``[N_i, D]`` float32 features of each structure (computed now, not cached)."""
    return get_extractor(name)(list(structures))
