"""A finished run's ``summary.json``, typed: what the trainer measured, as every reader reads it.

``schema_version`` says which layout a file has. Version 1 is the layout the trainer has always
written; files from before the field existed (every committed run under ``results/``) hold no
``schema_version`` and are read as version 1, unchanged (``to_json`` gives back the file's
content). A file of a newer version is read by the fields this version knows.

Every field the trainer writes is typed, and a value of the wrong type is a ``RunFileError``
naming the file and the field. Fields other than ``task`` and ``mixer`` may be missing (older or
hand-made files): they read as None. Keys this version does not know (a newer trainer's, or the
metrics of a split other than valid and test) are kept, not dropped: ``to_json`` writes them
back and ``result`` finds a split's metrics among them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from globalconv.core import io
from globalconv.core.settings import Problem, one_line

SCHEMA_VERSION = 1

# strict: a number written as a string, or a list for a mapping, is a damaged file, not a value
_MODEL = ConfigDict(extra="allow", frozen=True, strict=True)


class Baseline(BaseModel):
    """The task's trivial floor (``tasks.Baseline``): its value in the task's metric on the test
    split, and how it is reached."""

    model_config = _MODEL

    value: float
    what: str


class Summary(BaseModel):
    """What a finished run measured; fields in the order the trainer writes them."""

    model_config = _MODEL

    schema_version: int = SCHEMA_VERSION
    name: str | None = None
    task: str
    task_info: dict[str, Any] | None = None  # what the task states about its data
    mixer: str
    metric: str = "accuracy"  # the task's metric: accuracy or bits_per_token
    params: int | None = None
    flops_per_token: float | None = None
    seq_len: int | None = None
    d_model: int | None = None
    n_layers: int | None = None
    steps: int | None = None
    steps_done: int | None = None
    stopped_early: bool | None = None
    best_valid_step: int | None = None
    # the best validation value of the early-stopping metric (one of the three)
    best_valid_loss: float | None = None
    best_valid_accuracy: float | None = None
    best_valid_bits_per_token: float | None = None
    weights_from_step: int | None = None
    seed: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    device: str | None = None
    world_size: int | None = None
    train_seconds: float | None = None
    train_tokens: int | None = None  # the budget in tokens seen (padding included)
    train_tokens_per_s: float | None = None
    splits: dict[str, int] | None = None  # examples per split
    valid_source: str | None = None
    baseline: Baseline | None = None
    final_train_loss: float | None = None
    param_groups: list[dict[str, Any]] | None = None
    match: dict[str, Any] | None = None
    resumed_from_step: int | None = None
    # the final metrics per split (bits_per_token for language-modelling tasks only)
    valid_loss: float | None = None
    valid_accuracy: float | None = None
    valid_bits_per_token: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    test_bits_per_token: float | None = None

    @classmethod
    def parse(cls, data: Any, where: str | Path) -> Summary:
        """A summary from a file's JSON; anything but a summary is a one-line ``RunFileError``
        naming ``where`` (the file) and the fields at fault."""
        if not isinstance(data, dict):
            raise io.RunFileError(
                f"{where} holds {type(data).__name__}, not a run summary (a JSON object); "
                "rerun the run or fix the file"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = one_line(err, _phrase)
            raise io.RunFileError(f"{where}: {problems}; rerun the run or fix the file") from None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``summary.json``: the fields that were given (a file's own content,
        for a summary read from one, in this class's field order), unknown keys included."""
        return self.model_dump(exclude_unset=True)

    def result(self, split: str, metric: str | None = None) -> float | None:
        """``{split}_{metric}`` (default: the task's metric), e.g. the test accuracy; None when
        the summary has none."""
        key = f"{split}_{metric or self.metric}"
        if key in type(self).model_fields:
            return getattr(self, key)
        value = (self.model_extra or {}).get(key)
        return float(value) if _number(value) else None

    def results(self, split: str) -> dict[str, float]:
        """Every finite metric of one split, keyed as in the file (``valid_loss``, ...)."""
        prefix = f"{split}_"
        return {
            k: v for k, v in self.numbers().items() if k.startswith(prefix) and math.isfinite(v)
        }

    def numbers(self) -> dict[str, float | int]:
        """Every top-level number (booleans are not numbers), keyed as in the file."""
        return {k: v for k, v in self.to_json().items() if _number(v)}

    @property
    def trained_steps(self) -> int:
        """The steps trained (``steps_done``; ``steps`` in files without it)."""
        if self.steps_done is not None:
            return self.steps_done
        return self.steps or 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _phrase(problem: Problem) -> str:
    got = "" if problem.missing or problem.got is None else f" (got {problem.got!r:.60})"
    return f"{problem.key or 'the summary'}: {problem.message.lower()}{got}"


__all__ = ["SCHEMA_VERSION", "Baseline", "Summary"]
