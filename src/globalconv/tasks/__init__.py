"""Tasks: registered by name, generated deterministically from a seed."""

from globalconv.tasks import mnist1d  # noqa: F401  (registration)
from globalconv.tasks.base import (
    IGNORE_INDEX,
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
    "Split",
    "Task",
    "TaskParams",
    "TaskSpec",
    "available",
    "build",
    "get",
    "register_task",
]
