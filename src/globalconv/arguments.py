"""Argument types for the command line: counts and sizes refuse zero and negatives at parse time,
so ``--steps 0`` or ``--jobs 0`` is an error (exit code 2) rather than ignored or reinterpreted."""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type, least: float, what: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 1, "an integer >= 1")


def nonnegative_int(text: str) -> int:
    return _number(text, int, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    value = _number(text, float, 0, "a number > 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """Comma-separated positive integers."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


__all__ = ["int_list", "nonnegative_int", "positive_float", "positive_int"]
