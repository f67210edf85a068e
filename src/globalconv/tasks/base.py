"""The task interface and registry.

A task is one file: a pydantic ``Params`` model for its parameters, a ``spec`` saying what the
model sees and predicts, and ``splits()`` returning deterministic train/valid/test tensors
generated from the task's seed (same seed, same data, on any machine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor

from globalconv.core.errors import ConfigError
from globalconv.core.settings import Problem, one_line
from globalconv.registry import Registry

IGNORE_INDEX = -100  # targets with this value count neither in the loss nor in the metric

# What a parameter or a data file may ask for, checked before anything is allocated; an
# integer parameter without its own upper bound is bounded by MAX_COUNT.
MAX_COUNT = 2**24  # examples, lengths, symbols, classes, vocabulary (16.7M)
MAX_LEN = 2**20  # positions per sequence (a model's tables grow with it)
MAX_TOKENS = 2**31  # positions over every split of a generated task (16 GiB of int64 ids)

_REGISTRY: Registry[type[Task]] = Registry("task")


class TaskParams(BaseModel):
    """Base for a task's parameters: unknown keys are errors, types are strict (a boolean is not
    a number), numbers finite."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    seed: int = Field(
        0, ge=0, lt=2**32, description="seed of the data generator (same seed, same data)"
    )


@dataclass
class Split:
    """One split of a task.

    inputs: (N, L) int64 token ids, or (N, L) / (N, L, F) float values.
    targets: (N,) class ids (sequence head) or (N, L) per-token ids, IGNORE_INDEX where unscored.
    lengths: (N,) true lengths, or None when every sequence fills L.
    extras: further model inputs by keyword, first dimension N (e.g. an encoder-decoder's
        ``decoder_inputs``); passed to the model as they are.
    """

    inputs: Tensor
    targets: Tensor
    lengths: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.inputs.shape[0]
        sizes = [self.targets.shape[0], *(v.shape[0] for v in self.extras.values())]
        if any(size != n for size in sizes) or (
            self.lengths is not None and self.lengths.shape != (n,)
        ):
            raise ValueError(
                "inputs, targets, lengths and extras must have the same number of examples"
            )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def subset(self, index: Tensor) -> Split:
        """The examples at ``index`` (a long index or a boolean mask), as a new split."""
        lengths = None if self.lengths is None else self.lengths[index]
        extras = {k: v[index] for k, v in self.extras.items()}
        return Split(self.inputs[index], self.targets[index], lengths, extras)

    def batch(self, index: Tensor) -> tuple[dict[str, Tensor | None], Tensor]:
        """(model keyword inputs, targets) for the examples at ``index``."""
        lengths = None if self.lengths is None else self.lengths[index]
        inputs, targets = self.inputs[index], self.targets[index]
        if lengths is not None:  # trim to the longest sequence in the batch
            L = int(lengths.max())
            aligned = targets.dim() >= 2 and targets.shape[1] == inputs.shape[1]
            inputs = inputs[:, :L]
            targets = targets[:, :L] if aligned and not self.extras else targets
        model_inputs = {"inputs": inputs, "lengths": lengths}
        model_inputs.update({k: v[index] for k, v in self.extras.items()})
        return model_inputs, targets


@dataclass(frozen=True)
class Baseline:
    """The score a model gets without learning the task: the floor a verdict is measured from.

    value: in the task's metric (accuracy, or bits per token), on the test split.
    what: how that score is reached, e.g. "majority class" or "a random one of the 4 values".
    """

    value: float
    what: str


@dataclass(frozen=True)
class TaskSpec:
    """What a model for this task must take and produce."""

    max_len: int
    num_outputs: int
    head: Literal["sequence", "token"] = "sequence"
    causal: bool = False
    vocab_size: int | None = None  # token inputs
    input_dim: int | None = None  # real-valued inputs
    metric: Literal["accuracy", "bits_per_token"] = "accuracy"
    architecture: Literal["encoder", "encoder_decoder", "autoencoder"] = "encoder"

    @classmethod
    def next_token(cls, vocab_size: int, max_len: int) -> TaskSpec:
        """A causal task predicting, per position, one of the tokens it reads."""
        return cls(max_len, vocab_size, "token", True, vocab_size)

    def model_kwargs(self) -> dict[str, Any]:
        return dict(
            max_len=self.max_len,
            num_outputs=self.num_outputs,
            head=self.head,
            causal=self.causal,
            vocab_size=self.vocab_size,
            input_dim=self.input_dim,
        )


class Task:
    """Base class. Subclasses set ``Params`` and implement ``spec`` and ``splits``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[TaskParams]] = TaskParams
    description: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ("accuracy",)  # what spec.metric can be

    @property
    def info(self) -> dict[str, Any]:
        """What the data is, for the run record (e.g. a corpus's content hash); {} if nothing."""
        return {}

    def __init__(self, params: TaskParams) -> None:
        self.params = params

    @property
    def spec(self) -> TaskSpec:
        raise NotImplementedError

    def splits(self) -> dict[str, Split]:
        """{'train': ..., 'test': ..., optionally 'valid': ...}"""
        raise NotImplementedError

    def baseline(self, splits: dict[str, Split]) -> Baseline:
        """The trivial floor on the test split; tasks with a fairer one override this.

        Accuracy: always answering the most frequent training target. Bits per token: the
        training targets' unigram distribution (add-one smoothed), scored on test.
        """
        train = splits["train"].targets.reshape(-1)
        test = splits["test"].targets.reshape(-1)
        train, test = train[train != IGNORE_INDEX], test[test != IGNORE_INDEX]
        size = int(max(train.max(), test.max())) + 1
        counts = torch.bincount(train, minlength=size).double()
        if self.spec.metric == "bits_per_token":
            probs = (counts + 1) / (counts.sum() + size)
            bits = -torch.log2(probs[test]).mean()
            return Baseline(float(bits), "unigram frequencies of the training targets")
        majority = int(counts.argmax())
        return Baseline(float((test == majority).double().mean()), "majority class")

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.params.seed * 1_000_003 + offset)


register_task = _REGISTRY.register  # class decorator: @register_task("name")


def available() -> list[str]:
    """Names of the registered tasks."""
    return _REGISTRY.available()


def get(name: str) -> type[Task]:
    return _REGISTRY.get(name)


def build(name: str, params: dict[str, Any] | None = None) -> Task:
    """Build the task registered as ``name``; bad parameters raise ``ValueError``."""
    cls = get(name)
    try:
        parsed = cls.Params.model_validate(params or {})
    except ValidationError as err:

        def phrase(problem: Problem) -> str:
            if problem.unknown:
                allowed = ", ".join(cls.Params.model_fields)
                return f"task {name!r} has no parameter {problem.key!r}; allowed: {allowed}"
            if not problem.key:  # a check across parameters
                return f"task {name!r}: {problem.message}"
            return f"task {name!r} parameter {problem.key}: {problem.message} (got {problem.got!r})"

        raise ConfigError(one_line(err, phrase)) from None
    _check_sizes(name, parsed)
    task = cls(parsed)
    if "num_train" in cls.Params.model_fields:  # generated: the spec costs nothing, check it
        _check_total(name, parsed, task.spec.max_len)
    return task


def _check_sizes(name: str, params: TaskParams) -> None:
    for key, info in type(params).model_fields.items():
        value = getattr(params, key)
        bounded = any(hasattr(m, "le") or hasattr(m, "lt") for m in info.metadata)
        if isinstance(value, int) and not isinstance(value, bool) and not bounded:
            if value > MAX_COUNT:
                raise ConfigError(
                    f"task {name!r} parameter {key}={value:,} exceeds the limit of "
                    f"{MAX_COUNT:,}; lower it"
                )


def _check_total(name: str, params: TaskParams, max_len: int) -> None:
    check_length(f"task {name!r}", max_len)
    examples = sum(getattr(params, k) for k in ("num_train", "num_valid", "num_test"))
    if examples * max_len > MAX_TOKENS:
        raise ConfigError(
            f"task {name!r}: {examples:,} examples of up to {max_len:,} positions "
            f"({examples * max_len:,}) exceed the limit of {MAX_TOKENS:,} positions; "
            "lower the example counts or the length"
        )


def check_length(source: str, max_len: int) -> None:
    """``ValueError`` when sequences of ``max_len`` positions pass ``MAX_LEN``."""
    if max_len > MAX_LEN:
        raise ConfigError(
            f"{source}: sequences of {max_len:,} positions exceed the limit of {MAX_LEN:,}; "
            "use shorter sequences"
        )
