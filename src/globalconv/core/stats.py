"""Mean and spread of a few numbers (seeds of one cell), as every table and summary reports them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 denominator); the std is None for one value,
    which has no spread to report."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return mean, std


__all__ = ["mean_std"]
