"""A directory locked while a process writes it: a second process gets a clear refusal naming
the holder instead of racing it.

The lock is ``DIR/.lock`` held with ``filelock`` (an OS file lock: released by the kernel when
the holder dies, so a killed process never leaves a directory locked). Who holds it (pid, host,
command, since when) is in ``DIR/.lock.holder``, written once the lock is held, since a
contender opening the lock file empties it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from globalconv.core import io
from globalconv.core.errors import InputError

LOCK = ".lock"
HOLDER = ".lock.holder"


class LockedError(InputError):
    """The directory is being written by another process (the CLI exits with code 2)."""


def holder(directory: Path) -> str:
    """Who holds ``directory``'s lock, in words."""
    try:
        info = json.loads((Path(directory) / HOLDER).read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"process {info['pid']} on {info['host']} ({info['command']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def locked(directory: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``directory``'s lock for the block, or raise ``LockedError`` at once naming the
    holder. Re-entrant within a process (a sweep run in-process under the sweep's own lock)."""
    directory = Path(directory)
    if not enabled or directory.resolve() in _held:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(directory / LOCK, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockedError(
            f"{directory} is in use by {holder(directory)}; wait for it to finish, stop it, "
            "or choose another directory"
        ) from None
    _held.add(directory.resolve())
    io.remove_temporaries(directory)  # of a writer killed mid-save: no other writer now
    try:
        command = " ".join(["globalconv", *sys.argv[1:]])[:200]
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
        io.write_json(directory / HOLDER, {**info, "since": time.time()})
        yield
    finally:
        _held.discard(directory.resolve())
        (directory / HOLDER).unlink(missing_ok=True)
        lock.release()


_held: set[Path] = set()  # directories this process holds, for re-entrance


__all__ = ["LockedError", "holder", "locked"]
