"""Training: config, augmentation, the loop."""

from goectp.training.config import TrainConfig
from goectp.training.experiment import evaluate_test, run_split, split_graphs
from goectp.training.loop import evaluate_mae, target_stats, train

__all__ = ["TrainConfig", "evaluate_mae", "evaluate_test", "run_split", "split_graphs", "target_stats", "train"]
