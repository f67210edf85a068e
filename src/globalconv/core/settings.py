"""Settings given by the user: dotted keys set in nested mappings, and pydantic's report on a
mapping turned into one line (each caller phrases a problem its own way: config keys, sweep
keys, task parameters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from globalconv.core.errors import ConfigError


def set_dotted(data: dict[str, Any], key: str, value: Any, *, context: str) -> None:
    """``data[a][b][c] = value`` for ``key`` "a.b.c", making the sections that are missing; a
    part that holds a value rather than a section is a ``ConfigError`` starting with ``context``
    (e.g. "override 'model.d_model.x=1'")."""
    node = data
    *parents, last = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{context}: {part!r} is a value, not a section")
        node = child
    node[last] = value


@dataclass(frozen=True)
class Problem:
    """One entry of a pydantic ``ValidationError``."""

    loc: tuple[str | int, ...]  # where, as pydantic gives it
    key: str  # the same as a dotted key; "" for a check across the whole mapping
    unknown: bool  # a key the model does not have (extra="forbid")
    missing: bool  # a required key that is absent
    message: str  # pydantic's message, without the "Value error, " of a validator's ValueError
    got: Any  # the input refused (None when pydantic gives none)


def problems(err: ValidationError) -> list[Problem]:
    return [
        Problem(
            loc=tuple(e["loc"]),
            key=".".join(str(part) for part in e["loc"]),
            unknown=e["type"] == "extra_forbidden",
            missing=e["type"] == "missing",
            message=e["msg"].removeprefix("Value error, "),
            got=e.get("input"),
        )
        for e in err.errors()
    ]


def one_line(err: ValidationError, phrase: Callable[[Problem], str]) -> str:
    """Every problem of ``err`` phrased by ``phrase``, joined by "; "."""
    return "; ".join(phrase(problem) for problem in problems(err))


__all__ = ["Problem", "one_line", "problems", "set_dotted"]
