"""Writing and reading run files: a crash at any moment leaves either the old file or the new
one, and damage is found when a file is read.

Every file written with ``checksum=True`` has its SHA-256 recorded in ``checksums.json`` beside
it; ``read_bytes`` / ``read_json`` / ``read_safetensors`` check it and raise ``RunFileError``
naming the file. The manifest is updated *before* the file is replaced and keeps the file's
previous digest too, so a process killed between the two leaves a state that reads as intact
(the old file or the new one, both recorded); the manifest carries its own digest.
``checkpoint.pt`` carries its own checksum; ``metrics.jsonl`` one per line while it is appended
to, and its whole digest in the manifest once closed (``globalconv.train.records``). A file the
manifest does not list (runs written before checksums existed) is read unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from globalconv.core.errors import InputError

MANIFEST = "checksums.json"


class RunFileError(InputError):
    """A run file (or a saved model's) that is damaged, truncated, unreadable or not what it
    should hold; the message names it."""


class MissingRunFileError(RunFileError, FileNotFoundError):
    """A run directory, or a file it should hold, that does not exist."""


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files of writes that a killed process left in ``directory`` (call
    only while holding its lock: another writer's are then impossible). Returns them."""
    stale = sorted(Path(directory).glob(".*.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(directory: Path) -> dict[str, list[str]]:
    """{file name: its accepted digests}; the manifest checks itself with its own digest."""
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_bytes())
        files, check = data["files"], data["check"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        files, check = None, None
    if not isinstance(files, dict) or check != _digest_of(files):
        raise RunFileError(
            f"{path} is damaged (its own check does not match); rerun the run, or restore it"
        )
    return files


def _digest_of(files: dict[str, list[str]]) -> str:
    return sha256(json.dumps(files, sort_keys=True).encode())


def _write_manifest(directory: Path, files: dict[str, list[str]]) -> None:
    text = json.dumps({"files": files, "check": _digest_of(files)}, indent=1) + "\n"
    _atomic(directory / MANIFEST, lambda f: f.write(text.encode()))


def record(path: Path, data: bytes | None = None) -> None:
    """Add ``data`` (default: the file's bytes now) as ``path``'s digest in the manifest,
    keeping the previous one (see the module docstring)."""
    path = Path(path)
    files = _manifest(path.parent)
    digest = sha256(path.read_bytes() if data is None else data)
    files[path.name] = [*files.get(path.name, [])[-1:], digest]
    _write_manifest(path.parent, files)


def forget(path: Path) -> None:
    """Drop ``path`` from the manifest, for a file about to be appended to."""
    path = Path(path)
    files = _manifest(path.parent)
    if files.pop(path.name, None) is not None:
        _write_manifest(path.parent, files)


def write_bytes(path: Path, data: bytes, *, checksum: bool = False) -> None:
    path = Path(path)
    if checksum:
        path.parent.mkdir(parents=True, exist_ok=True)
        record(path, data)
    _atomic(path, lambda f: f.write(data))


def write_text(path: Path, text: str, *, checksum: bool = False) -> None:
    write_bytes(path, text.encode(), checksum=checksum)


def write_json(path: Path, data: Any, *, checksum: bool = False) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", checksum=checksum)


def write_safetensors(
    path: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
    *,
    checksum: bool = False,
) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_bytes(path, save(tensors, metadata=metadata), checksum=checksum)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, checked against the manifest beside it (``RunFileError`` if damaged)."""
    path = Path(path)
    if not path.is_file():
        raise MissingRunFileError(f"{path} does not exist")
    data = path.read_bytes()
    recorded = _manifest(path.parent).get(path.name)
    if recorded is not None and sha256(data) not in recorded:
        raise RunFileError(
            f"{path} is damaged: its SHA-256 does not match the one recorded in {MANIFEST} when "
            "it was written (truncated or changed since); rerun the run or restore the file"
        )
    return data


def read_json(path: Path) -> Any:
    """A checked JSON file; damage or malformed JSON is a ``RunFileError`` naming the file."""
    path = Path(path)
    data = read_bytes(path)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunFileError(
            f"{path} is not valid JSON ({err}); rerun the run or fix the file"
        ) from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Checked tensors of a safetensors file (CPU); damage is a ``RunFileError`` naming it."""
    from safetensors.torch import load

    path = Path(path)
    data = read_bytes(path)
    try:
        return load(data)
    except Exception as err:  # safetensors raises its own error types on malformed files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunFileError(f"{path} is not a readable safetensors file ({reason})") from None


__all__ = [
    "MANIFEST",
    "MissingRunFileError",
    "RunFileError",
    "read_bytes",
    "read_json",
    "read_safetensors",
    "record",
    "remove_temporaries",
    "forget",
    "write_bytes",
    "write_json",
    "write_safetensors",
    "write_text",
]
