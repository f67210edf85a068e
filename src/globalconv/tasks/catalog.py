"""The registered tasks with their parameters and metrics, as plain data and as text (what
``globalconv tasks`` prints)."""

from __future__ import annotations

import json
import types
from typing import Any, Literal, Union, get_args, get_origin

from globalconv import tasks


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _type(a) for a in args)
    if origin is list:
        return f"list[{_type(args[0])}]"
    return getattr(annotation, "__name__", str(annotation))


def describe(name: str) -> dict[str, Any]:
    """A task's description, metrics and parameters (type, default, help) as plain data."""
    cls = tasks.get(name)
    params = []
    for key, field in cls.Params.model_fields.items():
        if field.is_required():
            default: Any = "required"
        elif field.default_factory is not None:
            default = field.default_factory()
        else:
            default = field.default
        params.append(
            {
                "name": key,
                "type": _type(field.annotation),
                "default": default,
                "help": field.description or "",
            }
        )
    return {
        "name": name,
        "description": cls.description,
        "metrics": list(cls.metrics),
        "params": params,
    }


def render(entry: dict[str, Any]) -> str:
    """A ``describe`` entry as the text ``globalconv tasks`` prints: the task, its metric, then a
    line per parameter with its type, default and help."""

    def head(p: dict[str, Any]) -> str:
        default = "(required)" if p["default"] == "required" else json.dumps(p["default"])
        return f"{p['name']}: {p['type']} = {default}"

    lines = [f"{entry['name']}: {entry['description']}"]
    lines.append(f"  metric: {' or '.join(entry['metrics'])}")
    width = max(len(head(p)) for p in entry["params"])
    lines += [f"  {head(p).ljust(width)}  {p['help']}".rstrip() for p in entry["params"]]
    return "\n".join(lines)


__all__ = ["describe", "render"]
