"""Evaluation: tensor metrics, per-crystal-system tables, parity plots, reports."""

from goectp.evaluation.metrics import (
    anisotropy,
    eigenvalues,
    mean_eigenvalue,
    per_system_mae,
    summarize_splits,
    tensor_metrics,
)
from goectp.evaluation.plots import parity_plot
from goectp.evaluation.report import metrics_markdown, table2_markdown, write_report

__all__ = [
    "anisotropy",
    "eigenvalues",
    "mean_eigenvalue",
    "metrics_markdown",
    "parity_plot",
    "per_system_mae",
    "summarize_splits",
    "table2_markdown",
    "tensor_metrics",
    "write_report",
]
