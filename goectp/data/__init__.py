"""Data layer: dielectric-tensor datasets, real loaders, graph caches and splits."""

from goectp.data.dataset import GraphSet, graphs_from_records, load_graph_set
from goectp.data.dielectric import (
    TARGETS,
    DielectricRecord,
    filter_records,
    parse_dielectric_dict,
    read_dielectric_json,
    write_dielectric_json,
)
from goectp.data.paths import CANDIDATES_FILE, DIELECTRIC_FILE, cache_dir, data_dir, find_data_dir, sha256_file
from goectp.data.splits import CRYSTAL_SYSTEMS, SPLIT_SEEDS, crystal_system, random_split, split_masks

__all__ = [
    "CANDIDATES_FILE",
    "CRYSTAL_SYSTEMS",
    "DIELECTRIC_FILE",
    "SPLIT_SEEDS",
    "TARGETS",
    "DielectricRecord",
    "GraphSet",
    "cache_dir",
    "crystal_system",
    "data_dir",
    "filter_records",
    "find_data_dir",
    "graphs_from_records",
    "load_graph_set",
    "parse_dielectric_dict",
    "random_split",
    "split_masks",
    "read_dielectric_json",
    "sha256_file",
    "write_dielectric_json",
]
