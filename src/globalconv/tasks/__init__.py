"""Tasks: registered by name, generated deterministically from a seed."""

from globalconv.tasks import (  # noqa: F401  (registration)
    copy_reverse,
    files,
    hf,
    induction,
    listops,
    mnist1d,
    mqar,
    parity,
    selective_copy,
    text,
)
from globalconv.tasks.base import (
    IGNORE_INDEX,
    Baseline,
    Split,
    Task,
    TaskParams,
    TaskSpec,
    available,
    build,
    get,
    register_task,
)

__all__ = [
    "IGNORE_INDEX",
    "Baseline",
    "Split",
    "Task",
    "TaskParams",
    "TaskSpec",
    "available",
    "build",
    "get",
    "register_task",
]
