"""Neural-network layers of GoeCTP, one per file."""

from goectp.nn.lattice_edge import LatticeEdgeLayer
from goectp.nn.matformer import MatformerLayer
from goectp.nn.message import MLPMessageLayer
from goectp.nn.rbf import GaussianRBF
from goectp.nn.readout import ScalarHead, TensorHead

__all__ = ["GaussianRBF", "LatticeEdgeLayer", "MLPMessageLayer", "MatformerLayer", "ScalarHead", "TensorHead"]
