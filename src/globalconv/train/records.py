"""What a run records besides its weights: the metric log, TensorBoard, the environment.

``metrics.jsonl`` holds one JSON object per line: training records (``step``, ``loss``, ``lr``,
``grad_norm``, ``tokens_per_s``) and evaluation records (``step`` and ``valid_*`` metrics). On
resume, records past the checkpoint's step (written before the process died) are dropped, so
the log of a resumed run reads like that of an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from globalconv import __version__
from globalconv.config import ConfigError
from globalconv.core import io

_CHECKED = re.compile(r'^(\{.*), "check": "([0-9a-f]{16})"\}$')


def record_line(record: dict[str, Any]) -> str:
    """One line of the log: the record's JSON with a ``check`` key, the first 16 hex digits of
    the SHA-256 of the JSON without it, so a changed byte in any line is found when read."""
    text = json.dumps(record)
    return f'{text[:-1]}, "check": "{io.sha256(text.encode())[:16]}"}}\n'


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metric log. A torn last line (a killed writer) is skipped; any other
    line that is not valid JSON or fails its check is a ``RunFileError`` naming file and line."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    text = io.read_bytes(path).decode(errors="replace")  # whole-file check once closed
    *lines, tail = text.split("\n")  # tail: "" or the torn line of a killed writer
    for number, line in enumerate(lines, 1):
        checked = _CHECKED.match(line)
        body = checked.group(1) + "}" if checked else line
        try:
            record = json.loads(body)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or (
            checked and io.sha256(body.encode())[:16] != checked.group(2)
        ):
            raise io.RunFileError(
                f"{path} line {number} is damaged (its check does not match); rerun the run "
                "or remove its directory"
            )
        records.append(record)
    return records


def tensorboard_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "train.tensorboard=true needs the tensorboard package: "
            "pip install 'globalconv[tensorboard]'"
        ) from None
    return SummaryWriter


class MetricLog:
    """Appends records to the metric log at ``path`` (and to TensorBoard event files in
    ``tensorboard``, a folder); a no-op where ``enabled`` is False (processes other than
    rank 0)."""

    def __init__(
        self,
        path: Path,
        *,
        enabled: bool,
        resume_step: int | None = None,
        tensorboard: Path | None = None,
    ) -> None:
        self.file = None
        self.tb = None
        if not enabled:
            return
        self.path = path
        kept = [] if resume_step is None else read_metrics(path)
        if path.is_file():
            io.forget(path)  # appended to from now on: checked line by line until closed
        io.write_text(
            path, "".join(record_line(r) for r in kept if r.get("step", 0) <= (resume_step or 0))
        )
        self.file = open(path, "a")  # noqa: SIM115  (closed by close())
        if tensorboard is not None:
            writer = tensorboard_writer_class()
            # purge_step drops events past the checkpoint that a killed process had written
            purge = None if resume_step is None else resume_step + 1
            self.tb = writer(log_dir=str(tensorboard), purge_step=purge)

    def write(self, record: dict[str, Any]) -> None:
        if self.file is None:
            return
        self.file.write(record_line(record))
        self.file.flush()
        if self.tb is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.tb.add_scalar(key.replace("_", "/", 1) if "_" in key else key, value, step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            io.record(self.path)
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _git(*args: str) -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: str = "cpu", world_size: int = 1) -> dict[str, Any]:
    """Versions, hardware and threads: what a rerun must match to reproduce the numbers."""
    packages = ["numpy", "pydantic", "safetensors", "tqdm", "pyyaml", "mnist1d", "tensorboard"]
    commit = _git("rev-parse", "HEAD")
    cuda = None
    if torch.cuda.is_available():
        cuda = {
            "version": torch.version.cuda,
            "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
    return {
        "globalconv": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "packages": {name: _version(name) for name in packages},
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "device": device,
        "world_size": world_size,
        "cuda": cuda,
        "git_commit": commit or None,
        "git_dirty": bool(_git("status", "--porcelain")) if commit else None,
    }


__all__ = ["MetricLog", "environment", "read_metrics"]
