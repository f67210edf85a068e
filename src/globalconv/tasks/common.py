"""What the generated tasks share: split sizes, seeded random streams, leak removal, a cache.

* ``SyntheticParams``: ``num_train`` / ``num_valid`` / ``num_test`` (each task sets its defaults).
* ``rng(seed, stream)``: a numpy Generator per (seed, stream name), so each split is its own
  stream: changing ``num_test`` never changes the training data.
* ``drop_leaks(train, held_out)``: removes training examples whose input (and length) equals a
  validation or test example's, so a model cannot score by memorising.
* ``cached(...)``: tensors written once under a cache directory, keyed by a hash of the
  parameters, written atomically; for tasks whose generation takes more than a moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from globalconv.core import io
from globalconv.core.errors import ConfigError
from globalconv.tasks.base import Split, TaskParams


class SyntheticParams(TaskParams):
    num_train: int = Field(10_000, ge=1, description="training examples (before leak removal)")
    num_valid: int = Field(0, ge=0, description="validation examples (0: no validation split)")
    num_test: int = Field(1_000, ge=1, description="test examples")


def rng(seed: int, stream: str) -> np.random.Generator:
    """A numpy Generator for one named stream of one seed (PCG64; same numbers on any machine)."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def sizes(params: SyntheticParams) -> dict[str, int]:
    """{split name: number of examples} for the splits a synthetic task has."""
    out = {"train": params.num_train, "test": params.num_test}
    if params.num_valid:
        out["valid"] = params.num_valid
    return out


def _row_keys(split: Split) -> list[bytes]:
    """A 128-bit digest of each example's input row and length."""
    inputs = split.inputs.reshape(len(split), -1).numpy()
    lengths = [None] * len(split) if split.lengths is None else split.lengths.tolist()
    keys = []
    for row, n in zip(inputs, lengths, strict=True):
        h = hashlib.blake2b(row.tobytes(), digest_size=16)
        if n is not None:
            h.update(int(n).to_bytes(8, "little"))
        keys.append(h.digest())
    return keys


def drop_leaks(splits: dict[str, Split]) -> dict[str, Split]:
    """The splits with every training example that also occurs in valid or test removed."""
    held_out = set()
    for name, split in splits.items():
        if name != "train":
            held_out.update(_row_keys(split))
    train = splits["train"]
    keep = torch.tensor([key not in held_out for key in _row_keys(train)], dtype=torch.bool)
    if not keep.any():
        raise ConfigError(
            "every training example also occurs in the held-out splits; the task's space of "
            "sequences is too small: raise the sequence length or the vocabulary"
        )
    if keep.all():
        return splits
    return {**splits, "train": train.subset(keep)}


def carve_validation(splits: dict[str, Split], fraction: float, seed: int) -> dict[str, Split]:
    """A validation split of ``fraction`` of the training examples, drawn by ``seed``.

    The held-out examples leave the training split, and so does every remaining training
    example equal to one of them (``drop_leaks``), so validation is disjoint from training; test
    is untouched. A task that already has a validation split keeps it.
    """
    if "valid" in splits or fraction <= 0:
        return splits
    train = splits["train"]
    n_valid = int(round(fraction * len(train)))
    if not 1 <= n_valid < len(train):
        raise ConfigError(
            f"task.valid_fraction={fraction} of {len(train)} training examples leaves "
            f"{n_valid} for validation; choose a fraction that holds out at least one example "
            "and keeps at least one for training"
        )
    order = torch.from_numpy(rng(seed, "carve-validation").permutation(len(train)))
    held, kept = order[:n_valid].sort().values, order[n_valid:].sort().values
    carved = {"train": train.subset(kept), "valid": train.subset(held)}
    return drop_leaks({**splits, **carved})


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "globalconv"


def params_key(params: TaskParams, version: int, exclude: tuple[str, ...] = ("cache_dir",)) -> str:
    """A short hash of the parameters that determine the data (and the generator's version)."""
    record = params.model_dump(mode="json", exclude=set(exclude))
    blob = json.dumps({"params": record, "version": version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached(path: Path, make: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """Load the tensors at ``path`` (safetensors), or make them and write them atomically."""
    from safetensors.torch import load_file

    if path.is_file():
        return load_file(path)
    tensors = make()
    io.write_safetensors(path, tensors)
    return tensors


def split_numpy(
    inputs: np.ndarray,
    targets: np.ndarray,
    lengths: np.ndarray | None = None,
    **extras: np.ndarray,
) -> Split:
    """A Split from numpy arrays (token ids as int64)."""

    def tensor(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.astype(np.int64, copy=False)))

    return Split(
        tensor(inputs),
        tensor(targets),
        None if lengths is None else tensor(lengths),
        {k: tensor(v) for k, v in extras.items()},
    )
