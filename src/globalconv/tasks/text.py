"""Byte-level language modelling on real text that is already on the machine.

By default the corpus is the Python standard library's own source (its modules and the
``pydoc_data`` documentation topics), read from ``sysconfig.get_paths()['stdlib']``: every
``*.py`` file below it in sorted path order, except third-party packages (``site-packages``,
``dist-packages``) and the test suites (directories named ``test``, ``tests``, ``idle_test``).
Nothing installed by the user is read, and nothing is downloaded. Or name your own text files
(``files``), read in the order given.

The corpus is one byte stream; the last ``test_fraction`` of it is the test split and the
``valid_fraction`` before that the validation split (contiguous, as for enwik8), so no window
crosses from training into held-out text. Each split is cut into non-overlapping windows of
``seq_len`` bytes; the model predicts each next byte causally. Metric: bits per byte (the
trainer's ``bits_per_token``: mean cross-entropy / ln 2) on the held-out splits.

``task.info`` records what was read: the source, the number of files, the byte count, and the
SHA-256 of the exact byte stream, so a run states what it trained on (the stdlib differs between
Python versions, and the hash tells them apart); the trainer saves it in ``summary.json``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from globalconv.core.errors import DataError
from globalconv.tasks.base import Split, Task, TaskParams, TaskSpec, register_task

EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test"})


class TextParams(TaskParams):
    files: list[str] = Field(
        default_factory=list, description="text files to read in order; empty: Python stdlib"
    )
    seq_len: int = Field(256, ge=1, description="bytes per training window")
    valid_fraction: float = Field(0.05, ge=0.0, lt=0.5, description="share held out: valid")
    test_fraction: float = Field(0.05, gt=0.0, lt=0.5, description="share held out: test")
    max_bytes: int | None = Field(
        None,
        ge=2,
        le=2**40,
        description="use only the first max_bytes of the corpus (default: all)",
    )

    @model_validator(mode="after")
    def _fractions(self) -> TextParams:
        if self.valid_fraction + self.test_fraction >= 0.5:
            raise ValueError("valid_fraction + test_fraction must be below 0.5")
        return self


def stdlib_manifest(root: Path | None = None) -> tuple[Path, list[str]]:
    """The stdlib directory and its sorted relative paths of ``*.py`` files (filtered)."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else Path(root)
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]  # never descend into them
        rel = Path(folder).relative_to(root)
        names += [(rel / f).as_posix() for f in files if f.endswith(".py")]
    return root, sorted(names)


@register_task("text")
class Text(Task):
    Params = TextParams
    description = "byte-level language modelling on the Python stdlib source or your text files"
    metrics = ("bits_per_token",)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            max_len=self.params.seq_len,
            num_outputs=256,
            head="token",
            causal=True,
            vocab_size=256,
            metric="bits_per_token",
        )

    @cached_property
    def _corpus(self) -> tuple[bytes, dict[str, Any]]:
        p = self.params
        if p.files:
            paths = [Path(f) for f in p.files]
            for path in paths:
                if not path.is_file():
                    raise DataError(f"text file {path} does not exist; fix task.params.files")
            source: dict[str, Any] = {"source": "files", "files": [str(f) for f in paths]}
        else:
            root, names = stdlib_manifest()
            if not names:
                raise DataError(f"no .py files under the Python stdlib at {root}")
            paths = [root / name for name in names]
            source = {
                "source": "python-stdlib",
                "python": sys.version.split()[0],
                "root": str(root),
                "files": len(names),
                "manifest_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            }
        chunks, size = [], 0
        for path in paths:  # stop reading once max_bytes are in
            chunks.append(path.read_bytes())
            size += len(chunks[-1])
            if p.max_bytes is not None and size >= p.max_bytes:
                break
        data = b"".join(chunks)[: p.max_bytes]
        info = {
            **source,
            "files_read": len(chunks),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return data, info

    @property
    def info(self) -> dict[str, Any]:
        return self._corpus[1]

    def splits(self) -> dict[str, Split]:
        p = self.params
        data, _ = self._corpus
        stream = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()  # (bytes,)
        n = len(stream)
        n_test = int(n * p.test_fraction)
        n_valid = int(n * p.valid_fraction)
        bounds = {
            "train": (0, n - n_test - n_valid),
            "valid": (n - n_test - n_valid, n - n_test),
            "test": (n - n_test, n),
        }
        splits = {}
        for name, (start, stop) in bounds.items():
            if name == "valid" and p.valid_fraction == 0:
                continue
            windows = (stop - start - 1) // p.seq_len  # a window needs one byte after it
            if windows < 1:
                raise DataError(
                    f"the text's {name} split has {stop - start} bytes, fewer than seq_len + 1 = "
                    f"{p.seq_len + 1}; add text, lower seq_len, or raise the split's fraction"
                )
            used = windows * p.seq_len
            inputs = stream[start : start + used].view(windows, p.seq_len)  # views, no copy
            targets = stream[start + 1 : start + 1 + used].view(windows, p.seq_len)
            splits[name] = Split(inputs, targets)
        return splits
