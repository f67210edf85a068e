"""Training: the loop, scoring and evaluation, the run directory and its summary, optimiser
hints and schedules, checkpoints, matching, logging, sweeps."""

from globalconv.core.errors import DivergedError
from globalconv.train.checkpoint import CheckpointError
from globalconv.train.loop import TrainingInterrupted, train
from globalconv.train.optim import (
    get_optim_hints,
    lr_factor,
    parameter_groups,
    set_optim_hints,
)
from globalconv.train.rundir import RunDir
from globalconv.train.scoring import evaluate
from globalconv.train.summary import Summary

__all__ = [
    "CheckpointError",
    "DivergedError",
    "RunDir",
    "Summary",
    "TrainingInterrupted",
    "evaluate",
    "get_optim_hints",
    "lr_factor",
    "parameter_groups",
    "set_optim_hints",
    "train",
]
