"""Hugging Face ``datasets`` adapter (optional extra: ``pip install 'globalconv[hf]'``).

Reads a dataset from a directory written by ``Dataset(Dict).save_to_disk`` or by name through
``datasets.load_dataset`` (from the local Hub cache, or online if the user allows it), takes one
input column and one target column, and hands the arrays to the same checks as the ``files``
task (``globalconv.tasks.files.from_arrays``).

* input column: a string (encoded as UTF-8 bytes; vocabulary 256), a list of token ids, a list
  of floats, or a list of float lists (L, F). Rows of different lengths are padded, with lengths.
* target column: an integer label per row (sequence classification), or a list of ids per
  position (same length as the input). ``target_column: null`` makes a language model: the
  target at each position is the next input token, and mixing is causal.
* ``max_len`` truncates longer rows (and their per-token targets); default: the longest row.

All rows are read into memory. ``datasets`` is imported only when this task is built.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from globalconv.core.errors import ConfigError, DataError
from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskParams, TaskSpec, register_task
from globalconv.tasks.files import ArrayData, from_arrays


class HfParams(TaskParams):
    path: str = Field(description="a save_to_disk directory, or a dataset name for load_dataset")
    name: str | None = Field(None, description="the dataset's configuration name")
    input_column: str = "text"
    target_column: str | None = Field("label", description="null: next-token language model")
    train_split: str = "train"
    valid_split: str | None = None
    test_split: str = "test"
    max_len: int | None = Field(None, ge=1, description="truncate rows to this many positions")
    vocab_size: int | None = Field(None, ge=1, description="default: 256 for text, else inferred")
    num_classes: int | None = Field(None, ge=1, description="default: inferred from the labels")
    metric: Literal["accuracy", "bits_per_token"] = "accuracy"


def _load(p: HfParams):
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "the hf task needs the datasets package; install it with pip install 'globalconv[hf]'"
        ) from None
    try:
        if Path(p.path).is_dir():
            data = datasets.load_from_disk(p.path)
        else:
            data = datasets.load_dataset(p.path, p.name)
    except Exception as err:  # datasets raises many kinds (not found, offline, bad files)
        raise DataError(
            f"could not load the dataset {p.path!r}: {type(err).__name__}: {err}; give a "
            "save_to_disk directory or a dataset name that load_dataset can reach"
        ) from err
    if not isinstance(data, datasets.DatasetDict):
        raise DataError(f"{p.path} holds one split; save a DatasetDict with train and test splits")
    return data


def _row(value: Any, where: str) -> np.ndarray:
    """One input row as an array: (L,) ids or values, or (L, F) values."""
    if isinstance(value, str):
        return np.frombuffer(value.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    row = np.asarray(value)
    if row.dtype.kind not in "iuf" or row.ndim not in (1, 2):
        raise DataError(
            f"{where} is {type(value).__name__} of dtype {row.dtype}; the input column must "
            "hold strings, lists of ids, or lists of floats"
        )
    return row


def _pad(rows: list[np.ndarray], L: int, fill: float) -> np.ndarray:
    out = np.full((len(rows), L, *rows[0].shape[1:]), fill, dtype=rows[0].dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


@register_task("hf")
class HuggingFace(Task):
    Params = HfParams
    description = "a Hugging Face dataset (optional extra): one input and one target column"
    metrics = ("accuracy", "bits_per_token")

    @cached_property
    def data(self) -> ArrayData:
        p = self.params
        dataset = _load(p)
        wanted = {"train": p.train_split, "valid": p.valid_split, "test": p.test_split}
        arrays: dict[str, np.ndarray] = {}
        text = False
        columns = [p.input_column] + ([p.target_column] if p.target_column else [])
        for split, name in wanted.items():
            if name is None:
                continue
            if name not in dataset:
                raise DataError(
                    f"{p.path} has no split {name!r} (has {', '.join(dataset)}); "
                    f"set task.params.{split}_split"
                )
            table = dataset[name]
            for column in columns:
                if column not in table.column_names:
                    raise DataError(
                        f"{p.path}[{name}] has no column {column!r} (has "
                        f"{', '.join(table.column_names)}); set input_column / target_column"
                    )
            values = table[p.input_column]
            if len(values) == 0:
                raise DataError(f"{p.path}[{name}] is empty; the {split} split needs rows")
            text = text or any(isinstance(v, str) for v in values[:1])
            rows = [
                _row(v, f"{p.path}[{name}][{p.input_column}][{i}]") for i, v in enumerate(values)
            ]
            if p.target_column is None:  # language model: predict the next token
                if rows[0].dtype.kind == "f":
                    raise DataError(
                        f"{p.path}[{name}][{p.input_column}] holds real values; a language model "
                        "(target_column: null) needs text or token ids"
                    )
                short = [i for i, r in enumerate(rows) if len(r) < 2]
                if short:
                    raise DataError(
                        f"{p.path}[{name}] row {short[0]} has fewer than 2 tokens, nothing to "
                        "predict; filter such rows out first (dataset.filter)"
                    )
                targets = [r[1:] for r in rows]
                rows = [r[:-1] for r in rows]
            else:
                targets = table[p.target_column]
            if p.max_len is not None:
                rows = [r[: p.max_len] for r in rows]
            lengths = np.array([len(r) for r in rows])
            if lengths.min() == 0:
                raise DataError(f"{p.path}[{name}] has an empty input row; filter it out first")
            L = int(lengths.max())
            fill = 0 if rows[0].dtype.kind in "iu" else 0.0
            arrays[f"{split}_inputs"] = _pad(rows, L, fill)
            if not (lengths == L).all():
                arrays[f"{split}_lengths"] = lengths
            if targets and np.ndim(targets[0]) == 1:  # per-position targets
                targets = [np.asarray(t, dtype=np.int64)[: p.max_len] for t in targets]
                bad = [
                    i for i, (t, n) in enumerate(zip(targets, lengths, strict=True)) if len(t) != n
                ]
                if bad:
                    raise DataError(
                        f"{p.path}[{name}] row {bad[0]}: {len(targets[bad[0]])} targets for "
                        f"{lengths[bad[0]]} inputs; per-position targets need one per input"
                    )
                arrays[f"{split}_targets"] = _pad(targets, L, IGNORE_INDEX)
            else:
                arrays[f"{split}_targets"] = np.asarray(targets)
        vocab_size, num_classes = p.vocab_size, p.num_classes
        if vocab_size is None and text:
            vocab_size = 256
        if p.target_column is None and num_classes is None:  # outputs are next tokens
            if vocab_size is None:
                tops = [int(a.max()) for k, a in arrays.items() if not k.endswith("_lengths")]
                vocab_size = 1 + max(tops)
            num_classes = vocab_size
        return from_arrays(
            arrays, f"hf dataset {p.path}", vocab_size=vocab_size, num_classes=num_classes
        )

    @property
    def spec(self) -> TaskSpec:
        d = self.data
        return TaskSpec(
            max_len=d.max_len,
            num_outputs=d.num_classes,
            head=d.head,
            causal=self.params.target_column is None,
            vocab_size=d.vocab_size,
            input_dim=d.input_dim,
            metric=self.params.metric,
        )

    def splits(self) -> dict[str, Split]:
        return self.data.splits
