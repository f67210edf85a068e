"""The user's own data from one ``.npz`` file.

Arrays, by name (``np.savez(path, train_inputs=..., ...)``):

* ``train_inputs``, ``train_targets``, ``test_inputs``, ``test_targets`` (required);
  ``valid_inputs``, ``valid_targets`` (optional, together); ``{split}_lengths`` (optional).
* inputs: integer (N, L) token ids, or float (N, L) / (N, L, F) real values.
* targets: integer (N,) class ids (sequence classification) or (N, L) per-token ids with -100
  where a position is not scored (token head).
* lengths: integer (N,) true lengths in [1, L]; positions from a length on are padding, and
  per-token targets there must be -100.

The vocabulary (1 + the largest token id) and the number of classes (1 + the largest target)
are inferred over all splits unless given. Every problem (a missing or unknown array, a shape
or dtype mismatch, an id out of range, an empty split, a split with nothing to score) is a
``ValueError`` naming the array and the fix. ``from_arrays`` does the checking and is shared
with the Hugging Face adapter.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from globalconv.core.errors import DataError
from globalconv.tasks.base import (
    IGNORE_INDEX,
    MAX_COUNT,
    Split,
    Task,
    TaskParams,
    TaskSpec,
    check_length,
    register_task,
)

SPLITS = ("train", "valid", "test")
FIELDS = ("inputs", "targets", "lengths")


@dataclass
class ArrayData:
    """Checked splits and what a model for them needs."""

    splits: dict[str, Split]
    max_len: int
    num_classes: int
    head: Literal["sequence", "token"]
    vocab_size: int | None
    input_dim: int | None


def from_arrays(
    arrays: Mapping[str, np.ndarray],
    source: str,
    *,
    vocab_size: int | None = None,
    num_classes: int | None = None,
) -> ArrayData:
    """Check ``{split}_{inputs,targets,lengths}`` arrays and turn them into Splits."""

    def fail(message: str) -> ValueError:
        return DataError(f"{source}: {message}")

    def bounded(what: str, value: int, hint: str) -> int:
        if value > MAX_COUNT:
            raise fail(f"{what} {value:,} exceeds the limit of {MAX_COUNT:,}; {hint}")
        return value

    allowed = [f"{s}_{f}" for s in SPLITS for f in FIELDS]
    for key in arrays:
        if key not in allowed:
            raise fail(f"unknown array {key!r}; expected names: {', '.join(allowed)}")
    for key in ("train_inputs", "train_targets", "test_inputs", "test_targets"):
        if key not in arrays:
            raise fail(f"array {key!r} is missing; save it too, e.g. np.savez(path, {key}=...)")
    names = [s for s in SPLITS if f"{s}_inputs" in arrays or f"{s}_targets" in arrays]
    for s in names:
        for f in ("inputs", "targets"):
            if f"{s}_{f}" not in arrays:
                raise fail(f"array '{s}_{f}' is missing; {s} needs both inputs and targets")
    for s in SPLITS:
        if f"{s}_lengths" in arrays and s not in names:
            raise fail(f"array '{s}_lengths' has no '{s}_inputs'; remove it or add the split")

    # Shapes and dtypes, split by split.
    first = arrays["train_inputs"]
    tokens = first.dtype.kind in "iu"
    for s in names:
        x, y = arrays[f"{s}_inputs"], arrays[f"{s}_targets"]
        xn, yn = f"{s}_inputs", f"{s}_targets"
        if x.dtype.kind not in "iuf":
            raise fail(f"{xn} has dtype {x.dtype}; save token ids as int64 or values as float32")
        if (x.dtype.kind in "iu") != tokens:
            raise fail(
                f"{xn} is {x.dtype} but train_inputs is {first.dtype}; "
                "all splits must hold token ids, or all real values"
            )
        if tokens and x.ndim != 2:
            raise fail(f"{xn} holds token ids and must be (N, L), got shape {x.shape}")
        if not tokens and x.ndim not in (2, 3):
            raise fail(f"{xn} must be (N, L) or (N, L, F) real values, got shape {x.shape}")
        if x.ndim == 3 and first.ndim == 3 and x.shape[2] != first.shape[2]:
            raise fail(
                f"{xn} has {x.shape[2]} features but train_inputs has {first.shape[2]}; "
                "every split needs the same F"
            )
        if x.ndim != first.ndim:
            raise fail(f"{xn} has shape {x.shape} but train_inputs has {first.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise fail(f"{xn} is empty (shape {x.shape}); the {s} split needs examples")
        if y.dtype.kind not in "iu":
            raise fail(f"{yn} has dtype {y.dtype}; save class ids as int64")
        N, L = x.shape[:2]
        if y.shape not in ((N,), (N, L)):
            raise fail(
                f"{yn} has shape {y.shape} but {xn} has {x.shape}; targets must be (N,) = "
                f"({N},) for sequence labels or (N, L) = ({N}, {L}) per token"
            )
        if y.ndim != arrays["train_targets"].ndim:
            raise fail(
                f"{yn} is {'per-token' if y.ndim == 2 else 'per-sequence'} but train_targets "
                "is not; every split needs the same kind of targets"
            )
        if not tokens and not np.isfinite(x).all():
            raise fail(f"{xn} holds NaN or infinite values; clean or impute them")

    # Values: ranges of ids, labels and lengths.
    if tokens:
        low = min(int(arrays[f"{s}_inputs"].min()) for s in names)
        if low < 0:
            raise fail(f"token ids must be >= 0, found {low}; shift ids so that they start at 0")
        top = max(int(arrays[f"{s}_inputs"].max()) for s in names)
        bounded("token id", top, "renumber the ids densely from 0")
        if vocab_size is None:
            vocab_size = top + 1
        elif top >= vocab_size:
            raise fail(f"token id {top} is out of range for vocab_size={vocab_size}; raise it")
    per_token = arrays["train_targets"].ndim == 2
    top_label = -1
    for s in names:
        y, yn = arrays[f"{s}_targets"], f"{s}_targets"
        scored = y != IGNORE_INDEX if per_token else np.ones(y.shape, dtype=bool)
        if (y[scored] < 0).any():
            hint = "-100 marks an unscored position" if per_token else "class ids start at 0"
            raise fail(f"{yn} has negative labels ({int(y[scored].min())}); {hint}")
        if f"{s}_lengths" in arrays:
            n, ln = arrays[f"{s}_lengths"], f"{s}_lengths"
            N, L = arrays[f"{s}_inputs"].shape[:2]
            if n.dtype.kind not in "iu" or n.shape != (N,):
                raise fail(f"{ln} must be integer (N,) = ({N},), got {n.dtype} {n.shape}")
            if n.min() < 1 or n.max() > L:
                raise fail(f"{ln} must lie in [1, {L}], found [{n.min()}, {n.max()}]")
            if per_token:
                beyond = np.arange(L)[None, :] >= n[:, None]
                if (scored & beyond).any():
                    row = int(np.nonzero((scored & beyond).any(axis=1))[0][0])
                    raise fail(
                        f"{yn} scores positions beyond {ln} (example {row}); set them to -100"
                    )
        if not scored.any():
            raise fail(f"{yn} scores nothing (all -100); the {s} split needs a scored target")
        top_label = max(top_label, int(y[scored].max()))
    bounded("label", top_label, "renumber the classes densely from 0")
    if num_classes is None:
        num_classes = top_label + 1
    elif top_label >= num_classes:
        raise fail(f"label {top_label} is out of range for num_classes={num_classes}; raise it")

    for s in names:
        check_length(source, arrays[f"{s}_inputs"].shape[1])
    bounded("vocab_size", vocab_size or 0, "use a smaller vocabulary")
    bounded("num_classes", num_classes, "use fewer classes")
    splits = {}
    for s in names:
        x = arrays[f"{s}_inputs"]
        inputs = torch.from_numpy(x.astype(np.int64 if tokens else np.float32))
        targets = torch.from_numpy(arrays[f"{s}_targets"].astype(np.int64))
        lengths = arrays.get(f"{s}_lengths")
        lengths = None if lengths is None else torch.from_numpy(lengths.astype(np.int64))
        splits[s] = Split(inputs, targets, lengths)
    return ArrayData(
        splits=splits,
        max_len=max(arrays[f"{s}_inputs"].shape[1] for s in names),
        num_classes=num_classes,
        head="token" if per_token else "sequence",
        vocab_size=vocab_size if tokens else None,
        input_dim=None if tokens else (first.shape[2] if first.ndim == 3 else 1),
    )


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (no pickled objects), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist; fix task.params.path")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(
            f"{path} is not a readable .npz file ({err}); write it with np.savez"
        ) from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path} holds a single array, not named ones; write it with "
            "np.savez(path, train_inputs=..., train_targets=..., test_inputs=..., test_targets=...)"
        )
    arrays = {}
    with npz:
        for key in npz.files:
            _check_declared_size(path, npz, key)
            try:
                arrays[key] = npz[key]
            except ValueError:  # object arrays refuse to load without pickle
                raise DataError(
                    f"{path}: array {key!r} holds Python objects; save it as a numeric array "
                    "(int64 ids, float32 values) of one shape"
                ) from None
    return arrays


def _check_declared_size(path: Path, npz: np.lib.npyio.NpzFile, key: str) -> None:
    """Refuse an array whose header declares more bytes than the file holds for it, before
    numpy allocates what the header asks for."""
    member = f"{key}.npy"
    if member not in npz.zip.namelist():
        return
    with npz.zip.open(member) as f:
        try:
            version = np.lib.format.read_magic(f)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read(f)
        except ValueError as err:
            raise DataError(f"{path}: array {key!r} has a malformed header ({err})") from None
        offset = f.tell()
    declared = math.prod(shape) * dtype.itemsize
    held = npz.zip.getinfo(member).file_size - offset
    if not dtype.hasobject and declared > held:
        raise DataError(
            f"{path}: array {key!r} declares shape {shape} of {dtype} ({declared:,} bytes) but "
            f"the file holds {max(held, 0):,} bytes for it; the file is damaged, write it again"
        )


class FilesParams(TaskParams):
    path: str = Field(description="the .npz file")
    vocab_size: int | None = Field(None, ge=1, description="default: 1 + the largest token id")
    num_classes: int | None = Field(None, ge=1, description="default: 1 + the largest label")
    causal: bool = Field(False, description="causal mixing (for language-model targets)")
    metric: Literal["accuracy", "bits_per_token"] = "accuracy"


@register_task("files")
class Files(Task):
    Params = FilesParams
    description = "your own data: train/test (and valid) arrays in an .npz file"
    metrics = ("accuracy", "bits_per_token")

    @cached_property
    def data(self) -> ArrayData:
        p = self.params
        return from_arrays(
            load_npz(p.path), p.path, vocab_size=p.vocab_size, num_classes=p.num_classes
        )

    @property
    def spec(self) -> TaskSpec:
        d = self.data
        return TaskSpec(
            max_len=d.max_len,
            num_outputs=d.num_classes,
            head=d.head,
            causal=self.params.causal,
            vocab_size=d.vocab_size,
            input_dim=d.input_dim,
            metric=self.params.metric,
        )

    def splits(self) -> dict[str, Split]:
        return self.data.splits
