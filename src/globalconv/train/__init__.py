"""Training: the loop, optimiser hints and schedules, checkpoints, matching, logging, sweeps."""

from globalconv.train.checkpoint import CheckpointError
from globalconv.train.loop import DivergedError, TrainingInterrupted, evaluate, train
from globalconv.train.optim import (
    get_optim_hints,
    lr_factor,
    parameter_groups,
    set_optim_hints,
)

__all__ = [
    "CheckpointError",
    "DivergedError",
    "TrainingInterrupted",
    "evaluate",
    "get_optim_hints",
    "lr_factor",
    "parameter_groups",
    "set_optim_hints",
    "train",
]
