"""A run directory: the files one training run writes, named in one place, and read back.

A run directory holds ``config.json`` (the resolved config), ``request.json`` (the config as
requested, before matching: what reuse compares), ``env.json`` (versions, hardware, threads, git
commit), ``metrics.jsonl``, ``checkpoint.pt`` (training state for ``resume``), and when the run
is complete ``model.safetensors`` and ``summary.json`` (written last: its presence marks a
finished run). ``RunDir`` names them, reads them through the checked io of ``core.io``, tells
the run's state (``status``) and rebuilds its model (``load_model``); the trainer, the sweeps,
the protocol, eval, the listing and the report all go through it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from globalconv import config as configuration
from globalconv.config import ConfigError, RunConfig
from globalconv.core import io
from globalconv.train import checkpoint, records
from globalconv.train.summary import Summary

if TYPE_CHECKING:
    from torch import Tensor, nn

    from globalconv.tasks import TaskSpec

# beside the run directories of a protocol cell: its grid, scores and choice (train.protocol)
SELECTION = "selection.json"
SECTIONS = ("task", "model", "train")  # of every run config, of every version


class RunState(str, Enum):
    DONE = "done"
    EARLY_STOP = "early stop"  # finished, stopped by early stopping before its last step
    PARTIAL = "partial"  # a checkpoint and no summary: resume it
    NEW = "new"  # a config and nothing trained yet (stopped before its first checkpoint)
    DAMAGED = "damaged"  # a file that fails its check or does not hold what it should


@dataclass(frozen=True)
class RunStatus:
    """What ``RunDir.status`` found. ``problem``: for a damaged run the error naming the file;
    for a partial run whose checkpoint cannot be read, that error."""

    state: RunState
    config: dict[str, Any] | None = None  # the resolved config (None when damaged)
    summary: Summary | None = None  # finished runs
    step: int | None = None  # partial runs: the checkpoint's step, of ``steps``
    steps: int | None = None
    problem: str | None = None

    @property
    def label(self) -> str:
        """The state as ``globalconv runs`` prints it."""
        if self.state is RunState.PARTIAL:
            return "bad checkpoint" if self.problem else f"step {self.step}/{self.steps}"
        if self.state is RunState.NEW:
            return "no checkpoint"
        return self.state.value


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory. Paths are properties; ``read_*`` check each file against
    the run's ``checksums.json`` and raise ``RunFileError`` naming a damaged one."""

    path: Path

    CONFIG = "config.json"
    REQUEST = "request.json"
    ENV = "env.json"
    SUMMARY = "summary.json"
    WEIGHTS = "model.safetensors"
    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.pt"
    TENSORBOARD = "tensorboard"  # a folder, with train.tensorboard=true

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def request_path(self) -> Path:
        return self.path / self.REQUEST

    @property
    def env_path(self) -> Path:
        return self.path / self.ENV

    @property
    def summary_path(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def weights_path(self) -> Path:
        return self.path / self.WEIGHTS

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def tensorboard_path(self) -> Path:
        return self.path / self.TENSORBOARD

    @property
    def finished(self) -> bool:
        """Whether the run completed (its summary, written last, is there)."""
        return self.summary_path.is_file()

    @property
    def has_weights(self) -> bool:
        return self.weights_path.is_file()

    # -- reading -------------------------------------------------------------------------------

    def read_config(self) -> dict[str, Any]:
        """The resolved config as saved (a mapping: runs of older versions stay readable)."""
        return io.read_json(self.config_path)

    def run_config(self) -> RunConfig:
        """The resolved config, validated."""
        return configuration.parse(self.read_config())

    def read_env(self) -> dict[str, Any]:
        return io.read_json(self.env_path)

    def read_summary(self) -> Summary:
        return Summary.parse(io.read_json(self.summary_path), self.summary_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metric log's records (none when the run has logged nothing yet)."""
        return records.read_metrics(self.metrics_path)

    # -- writing (the trainer's; each file atomic and checksummed) -------------------------------

    def write_config(self, resolved: dict[str, Any]) -> None:
        io.write_json(self.config_path, resolved, checksum=True)

    def write_request(self, requested: dict[str, Any]) -> None:
        io.write_json(self.request_path, requested, checksum=True)

    def write_env(self, env: dict[str, Any]) -> None:
        io.write_json(self.env_path, env, checksum=True)

    def write_weights(self, state: dict[str, Tensor], step: int) -> None:
        """The trained weights, with the step they are from and the config that builds them."""
        metadata = {"step": str(step), "config": self.CONFIG}
        io.write_safetensors(self.weights_path, state, metadata=metadata, checksum=True)

    def write_summary(self, summary: Summary) -> None:
        io.write_json(self.summary_path, summary.to_json(), checksum=True)

    def remove_results(self) -> None:
        """Delete what training produces past the config (checkpoint, weights, summary,
        TensorBoard events), for a run trained again from scratch."""
        for path in (self.checkpoint_path, self.summary_path, self.weights_path):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard_path, ignore_errors=True)

    # -- state ---------------------------------------------------------------------------------

    def status(self) -> RunStatus:
        """Done, early stop, partial (with its step), new or damaged. Every file is checked
        first, so that a damaged one is never reported as done."""
        try:
            return self._status()
        except (io.RunFileError, KeyError, TypeError) as err:
            problem = (
                str(err) if isinstance(err, io.RunFileError) else f"{self.path}: unexpected {err}"
            )
            return RunStatus(RunState.DAMAGED, problem=problem)

    def _status(self) -> RunStatus:
        for path in (self.config_path, self.request_path, self.env_path, self.summary_path,
                     self.weights_path):  # fmt: skip
            if path.is_file():
                io.read_bytes(path)
        self.read_metrics()
        config = self.read_config()
        if not (
            isinstance(config, dict) and all(isinstance(config.get(k), dict) for k in SECTIONS)
        ):
            raise io.RunFileError(
                f"{self.config_path} is not a run config (it lacks a task, model or train "
                "section); rerun the run or fix the file"
            )
        if self.finished:
            if not self.has_weights:
                raise io.RunFileError(f"{self.weights_path} is missing from a finished run")
            summary = self.read_summary()
            if self.checkpoint_path.is_file():
                try:
                    checkpoint.read_meta(self.checkpoint_path)
                except checkpoint.CheckpointError as err:
                    raise io.RunFileError(str(err)) from None
            state = RunState.EARLY_STOP if summary.stopped_early else RunState.DONE
            return RunStatus(state, config, summary)
        if not self.checkpoint_path.is_file():
            return RunStatus(RunState.NEW, config)
        try:
            meta = checkpoint.read_meta(self.checkpoint_path)
        except checkpoint.CheckpointError as err:
            return RunStatus(RunState.PARTIAL, config, problem=str(err))
        return RunStatus(RunState.PARTIAL, config, step=meta["step"], steps=meta["steps"])

    # -- the model -----------------------------------------------------------------------------

    def check_model_files(self) -> None:
        """``MissingRunFileError`` unless the config and the weights are both there."""
        for path in (self.config_path, self.weights_path):
            if not path.is_file():
                raise io.MissingRunFileError(
                    f"{path} does not exist: not a finished run directory (pass one written by "
                    "globalconv train, or resume the run)"
                )

    def load_model(self, spec: TaskSpec | None = None, *, serving: str | None = None) -> nn.Module:
        """The trained model, rebuilt from ``config.json`` and loaded from
        ``model.safetensors`` (never unpickled), on the CPU in eval mode.

        spec: the task the model is to serve when it is not the one it was trained on (eval at
        another length), and ``serving`` that task in words; weights that do not fit it are then
        a ``ConfigError`` naming it. Without them, weights that do not fit their own config are a
        ``RunFileError``: the file was written by something else.
        """
        from globalconv import tasks
        from globalconv.models import build_model

        self.check_model_files()
        cfg = self.run_config()
        if spec is None:
            spec = tasks.build(cfg.task.name, cfg.task.params).spec
        model = build_model(cfg.model, spec)
        state = io.read_safetensors(self.weights_path)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            if serving is None:
                first = str(err).strip().splitlines()[0]
                raise io.RunFileError(
                    f"{self.weights_path} does not match the model its {self.CONFIG} describes "
                    f"({first}); was it written by another version?"
                ) from None
            detail = " ".join(str(err).split())[:300]
            raise ConfigError(f"the saved model does not fit {serving}: {detail}") from None
        return model.eval()


def find_runs(root: str | Path, *, finished: bool = False) -> list[RunDir]:
    """The run directories under ``root``, root included, sorted by path: those holding a
    config (``finished``: a summary)."""
    marker = RunDir.SUMMARY if finished else RunDir.CONFIG
    return [RunDir(path) for path in sorted(p.parent for p in Path(root).rglob(marker))]


__all__ = ["SELECTION", "RunDir", "RunState", "RunStatus", "find_runs"]
