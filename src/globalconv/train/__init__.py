"""Training: the loop, run directories, checkpoints and logging."""

from globalconv.train.loop import evaluate, lr_factor, parameter_groups, train

__all__ = ["evaluate", "lr_factor", "parameter_groups", "train"]
