"""Training: the settings (:mod:`~goectp.training.config`), the loop (:mod:`~goectp.training.loop`, with
:mod:`~goectp.training.augment` and :mod:`~goectp.training.ema`), one split of the paper's protocol
(:mod:`~goectp.training.experiment`) and several in parallel (:mod:`~goectp.training.parallel`), scalar pretraining
(:mod:`~goectp.training.pretrain` on :mod:`~goectp.training.scalar_sets`), and the Born-charge model
(:mod:`~goectp.training.born`)."""

from goectp.training.config import TrainConfig
from goectp.training.experiment import evaluate_test, run_split, split_graphs
from goectp.training.loop import evaluate_mae, target_stats, train

__all__ = ["TrainConfig", "evaluate_mae", "evaluate_test", "run_split", "split_graphs", "target_stats", "train"]
