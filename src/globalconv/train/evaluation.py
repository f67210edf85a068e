"""Re-evaluating a finished run's saved model (``globalconv eval``), optionally at another length
or with other task parameters.

The model is rebuilt from the run's ``config.json`` and loaded from ``model.safetensors``
(``RunDir.load_model``, never unpickled). A task parameter change that changes the model's
shape (a longer sequence for an explicit global kernel, another vocabulary) is an error naming
the parameter, never a silent truncation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from globalconv import config as configuration
from globalconv import tasks
from globalconv.config import ConfigError
from globalconv.train.data import task_data
from globalconv.train.rundir import RunDir
from globalconv.train.scoring import check_device, evaluate

LENGTH_PARAMS = ("seq_len", "length", "max_len")


def length_param(task_name: str) -> str:
    fields = tasks.get(task_name).Params.model_fields
    for name in LENGTH_PARAMS:
        if name in fields:
            return name
    raise ConfigError(
        f"task {task_name!r} has no length parameter ({', '.join(LENGTH_PARAMS)}); "
        "its length is fixed. Change other task parameters with task.params.KEY=VALUE"
    )


def evaluate_run(
    run_dir: str | Path,
    overrides: list[str] | None = None,
    *,
    length: int | None = None,
    splits: list[str] | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Metrics of a run's saved model on its task (as trained, or with task overrides)."""
    run = RunDir(run_dir)
    run.check_model_files()
    overrides = list(overrides or [])
    other = [o for o in overrides if not o.startswith("task.")]
    if other:
        raise ConfigError(f"eval changes task settings only (task.KEY=VALUE); got {other}")
    trained = run.run_config()
    if length is not None:
        overrides.append(f"task.params.{length_param(trained.task.name)}={length}")
    data = configuration.apply_overrides(trained.model_dump(mode="json"), overrides)
    cfg = configuration.parse(data)
    check_device(device)

    trained_spec = tasks.build(trained.task.name, trained.task.params).spec
    task, task_splits, _ = task_data(cfg)
    spec = task.spec
    # a model built for the longer of the two lengths serves shorter sequences as trained
    model_spec = dataclasses.replace(spec, max_len=max(spec.max_len, trained_spec.max_len))
    serving = (
        f"task {cfg.task.name!r} with these parameters "
        f"(length {spec.max_len}, trained at {trained_spec.max_len})"
    )
    model = run.load_model(model_spec, serving=serving).to(device)
    wanted = splits or [s for s in task_splits if s != "train"]
    unknown = [s for s in wanted if s not in task_splits]
    if unknown:
        raise ConfigError(f"unknown split(s) {unknown}; this task has {sorted(task_splits)}")
    bs = batch_size or trained.train.eval_batch_size
    results = {
        name: evaluate(
            model, task_splits[name], spec, bs, device, precision=trained.train.precision
        )
        for name in wanted
    }
    return {
        "run": str(run.path),
        "task": cfg.task.name,
        "task_params": cfg.task.params,
        "seq_len": spec.max_len,
        "trained_seq_len": trained_spec.max_len,
        "results": results,
    }


__all__ = ["evaluate_run", "length_param"]
