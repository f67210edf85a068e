"""Training checkpoints: one self-checking file, written atomically, loaded without unpickling.

Layout of a run's ``checkpoint.pt`` (``RunDir.checkpoint_path``)::

    MAGIC (16 bytes) | sha256 of the rest (32) | meta length (8, LE) | meta JSON | payload

``meta`` is small and readable without the payload (step, steps, the resolved config);
``payload`` is ``torch.save`` of the training state (model and optimiser state dicts, RNG
states, counters) and is read back with ``torch.load(weights_only=True)``, which refuses
arbitrary Python objects. The checksum turns any truncation or damage into a clear error
instead of a silent fresh start, and the atomic replace (``globalconv.core.io``) means a process
killed mid-save leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import struct
from pathlib import Path
from typing import Any

import torch

from globalconv.core import io
from globalconv.core.errors import InputError

MAGIC = b"globalconv-ckpt\x01"
FORMAT = 1


class CheckpointError(InputError):
    """A checkpoint that cannot be used: missing, damaged, or from a different run."""


def save(path: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) and ``meta`` (JSON) atomically."""
    buffer = _io.BytesIO()
    torch.save(state, buffer)
    meta_bytes = json.dumps({"format": FORMAT, **meta}).encode()
    body = struct.pack("<Q", len(meta_bytes)) + meta_bytes + buffer.getvalue()
    io.write_bytes(Path(path), MAGIC + hashlib.sha256(body).digest() + body)


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a globalconv checkpoint (wrong header)")
    digest, body = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if len(body) < 8 or hashlib.sha256(body).digest() != digest:
        raise CheckpointError(
            f"checkpoint {path} is corrupted (checksum mismatch: truncated or damaged); "
            "restore a good copy or start a new run directory"
        )
    (n,) = struct.unpack("<Q", body[:8])
    meta = json.loads(body[8 : 8 + n])
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {meta.get('format')!r}; this version reads {FORMAT}"
        )
    return meta, body[8 + n :]


def read_meta(path: str | Path) -> dict[str, Any]:
    """The checkpoint's metadata (verifies the checksum, does not unpickle the state)."""
    return _read(Path(path))[0]


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta, state) from a checkpoint, tensors on the CPU. Raises CheckpointError."""
    path = Path(path)
    meta, payload = _read(path)
    try:
        state = torch.load(_io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses anything but tensors and plain containers
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint {path} holds data that cannot be loaded safely: {reason}"
        ) from None
    return meta, state


__all__ = ["CheckpointError", "load", "read_meta", "save"]
