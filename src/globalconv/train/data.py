"""What a run trains on: the configured task's splits (cached per process) and the batch drawn
at each step, a function of (seed, step) alone so a resumed run draws the same batches."""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from globalconv import tasks
from globalconv.config import RunConfig
from globalconv.core.errors import ConfigError
from globalconv.tasks import Split
from globalconv.tasks.common import carve_validation


@lru_cache(maxsize=2)
def _task_data(
    name: str, params_json: str, valid_fraction: float
) -> tuple[tasks.Task, dict[str, Split], str | None]:
    # Generating a task can take seconds; runs of one process (sweeps, tests) share it.
    task = tasks.build(name, json.loads(params_json))
    splits = task.splits()
    if "valid" in splits:
        return task, splits, "the task's own validation split"
    if not valid_fraction:
        return task, splits, None
    carved = carve_validation(splits, valid_fraction, task.params.seed)
    return task, carved, f"{valid_fraction:g} of the training examples (task.valid_fraction)"


def task_data(cfg: RunConfig) -> tuple[tasks.Task, dict[str, Split], str | None]:
    """The configured task, its splits (a validation split carved from training if asked) and
    where the validation split came from (cached per process; the tensors are not modified)."""
    params = json.dumps(cfg.task.params, sort_keys=True)
    return _task_data(cfg.task.name, params, cfg.task.valid_fraction)


class BatchOrder:
    """The global batch at step s: epoch e = s // (n // B) shuffles with seed (seed, e); the
    last partial batch of an epoch is dropped so every step sees exactly B examples."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if batch_size > n:
            raise ConfigError(
                f"train.batch_size={batch_size} exceeds the {n} training examples; "
                "lower train.batch_size"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator)
        return self._perm[position * self.batch_size : (position + 1) * self.batch_size]


__all__ = ["BatchOrder", "task_data"]
