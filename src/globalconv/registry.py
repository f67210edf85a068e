"""A name -> class registry, shared by mixers, kernel parameterisations and tasks."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from globalconv.core.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "mixer", "kernel", "task": named in error messages
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator adding the class under ``name`` (and setting ``cls.name``)."""

        def decorate(cls: T) -> T:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for a class registered only for a while, as tests do)."""
        self.get(name)
        del self._classes[name]

    def available(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> T:
        if name not in self._classes:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"
            )
        return self._classes[name]


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation, config=ConfigDict(strict=True, allow_inf_nan=False))


def check_options(owner: str, functions: list[Callable], given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the keyword-only parameters of ``functions`` (the first one to
    name a parameter wins): unknown names and values not of the annotated type (strictly: a
    boolean is not a number, "maybe" is not a boolean, numbers are finite) raise ``ValueError``
    naming ``owner`` (e.g. "mixer 'attention'"). Returns the validated values.

    This is the one place where every mixer's and kernel's options are typed, so a new one gets
    strict options from its signature alone."""
    annotations: dict[str, Any] = {}
    for function in functions:
        hints = typing.get_type_hints(function)
        for p in inspect.signature(function).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                annotations.setdefault(p.name, hints.get(p.name, Any))
    unknown = sorted(set(given) - set(annotations))
    if unknown:
        listed = ", ".join(annotations) or "none"
        raise ConfigError(f"{owner} has no option {', '.join(unknown)}; allowed: {listed}")
    checked = {}
    for name, value in given.items():
        try:
            checked[name] = _adapter(annotations[name]).validate_python(value)
        except ValidationError as err:
            reasons = "; ".join(dict.fromkeys(e["msg"] for e in err.errors()))
            raise ConfigError(f"{owner} option {name}: {reasons} (got {value!r})") from None
    return checked
