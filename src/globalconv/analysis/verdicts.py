"""Verdicts that say only what the runs support.

The rule, stated once and printed in every report (``RULE``):

- A verdict word needs at least ``MIN_SEEDS`` seeds on both sides; with fewer, the numbers are
  shown and no word is said, not even "neither learned".
- When both sides are within ``CHANCE_MARGIN`` of the task's trivial floor (5 points of
  accuracy, or 5% of the floor's bits per token), the verdict is "neither learned this task at
  this budget", never "matches".
- Otherwise Welch's two-sided t-test on the per-seed test scores at level ``ALPHA``: a
  significant difference "beats" or "falls short of" attention by the difference in means (with
  its 95% interval); otherwise the two are "indistinguishable". Identical seeds on both sides
  (zero variance) are a difference with certainty when the means differ.
- A run whose validation score still improved by more than ``IMPROVING`` over the last fifth of
  training (1 point of accuracy, or 1% of bits per token) is "still improving": its verdict says
  so, since more training could change it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

MIN_SEEDS = 3
ALPHA = 0.05
CHANCE_MARGIN = {"accuracy": 0.05, "bits_per_token": 0.05}  # absolute / relative to the floor
IMPROVING = {"accuracy": 0.01, "bits_per_token": 0.01}  # absolute / relative

RULE = (
    f"Verdict rule: a verdict word needs n ≥ {MIN_SEEDS} seeds on both sides (fewer: numbers "
    "only). With enough seeds, if both sides are within 5 points of accuracy (or 5% of the bits "
    "per token) of the task's trivial floor, the verdict is 'neither learned this task at this "
    f"budget'. Otherwise Welch's two-sided t-test on the per-seed test scores at {ALPHA:g}: "
    "significant → 'beats' or 'falls short of' attention by the difference in means (95% "
    "interval); not significant → 'indistinguishable from attention'. A cell whose validation "
    "score still improved by more than 1 point of accuracy (1% of bits per token) over the last "
    "fifth of training is marked 'still improving'."
)


@dataclass(frozen=True)
class Verdict:
    word: str | None  # beats | falls short of | indistinguishable from | neither learned | None
    text: str  # the sentence, numbers included
    p_value: float | None = None
    significant: bool = False


def _higher(metric: str) -> bool:
    return metric == "accuracy"


def near_floor(mean: float, floor: float | None, metric: str) -> bool:
    """Within the chance margin of the trivial floor (or below it)."""
    if floor is None:
        return False
    if _higher(metric):
        return mean <= floor + CHANCE_MARGIN[metric]
    return mean >= floor * (1 - CHANCE_MARGIN[metric])


def below_floor(mean: float, floor: float | None, metric: str) -> bool:
    """Worse than the trivial floor by more than the chance margin (e.g. a collapsed model)."""
    if floor is None:
        return False
    if _higher(metric):
        return mean < floor - CHANCE_MARGIN[metric]
    return mean > floor * (1 + CHANCE_MARGIN[metric])


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Welch's t-test of mean(b) - mean(a): (difference, p value, half-width of its 95% CI)."""
    from scipy import stats

    diff = statistics.fmean(b) - statistics.fmean(a)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return diff, (1.0 if diff == 0 else 0.0), 0.0
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = diff / se
    p = 2 * stats.t.sf(abs(t), df)
    return diff, float(p), float(stats.t.ppf(0.975, df) * se)


def compare(
    reference: list[float],
    other: list[float],
    *,
    metric: str,
    floor: float | None,
    name: str = "attention",
) -> Verdict:
    """The verdict on ``other``'s per-seed test scores against ``reference``'s."""
    ref_mean, mean = statistics.fmean(reference), statistics.fmean(other)
    if min(len(reference), len(other)) < MIN_SEEDS:  # even "neither learned" is a verdict
        return Verdict(
            None,
            f"{show(mean, metric)} against {name}'s {show(ref_mean, metric)} "
            f"(n={len(other)} vs {len(reference)}: too few seeds for a verdict)",
        )
    if near_floor(ref_mean, floor, metric) and near_floor(mean, floor, metric):
        below = [below_floor(m, floor, metric) for m in (ref_mean, mean)]
        if any(below):
            who = "both" if all(below) else "one"
            return Verdict(
                "neither learned",
                f"and {name} both did no better than the floor: neither learned this task at "
                f"this budget (neither cleared the chance margin of the floor "
                f"{show(floor, metric)}, and {who} did worse: {show(mean, metric)} against "
                f"{name}'s {show(ref_mean, metric)})",
            )
        return Verdict(
            "neither learned",
            f"and {name} both stayed at the floor: neither learned this task at this budget "
            f"(both within the chance margin of the floor {show(floor, metric)})",
        )
    diff, p, half = welch(reference, other)
    better = diff > 0 if _higher(metric) else diff < 0
    size = show(abs(diff), metric, points=True)
    interval = f" (95% interval ±{show(half, metric, points=True)}, p={p:.2g})"
    if p < ALPHA:
        word = "beats" if better else "falls short of"
        return Verdict(word, f"{word} {name} by {size}{interval}", p, True)
    return Verdict(
        "indistinguishable from",
        f"is indistinguishable from {name} (difference {size}, p={p:.2g}, "
        f"n={len(other)} vs {len(reference)})",
        p,
    )


def show(value: float | None, metric: str, *, points: bool = False) -> str:
    if value is None:
        return "-"
    if _higher(metric):
        return f"{100 * value:.1f} points" if points else f"{100 * value:.1f}%"
    return f"{value:.3f} bits"


def still_improving(curve: list[tuple[int, float]], steps: int, metric: str) -> bool | None:
    """Whether the validation ``metric`` improved by more than ``IMPROVING`` over the last fifth.

    curve: (step, validation value) pairs. None when the curve cannot tell (no evaluation at or
    before 80% of training, or none after it).
    """
    start = 0.8 * steps
    before = [v for s, v in curve if s <= start]
    after = [v for s, v in curve if s > start]
    if not before or not after:
        return None
    then, now = before[-1], after[-1]
    if _higher(metric):
        return now - then > IMPROVING[metric]
    return then - now > IMPROVING[metric] * abs(then)


def gap_recovered(
    reference: list[float], plain: list[float], gated: list[float], *, metric: str
) -> float | None:
    """The share of attention's significant lead over ``plain`` that ``gated`` closes, or None
    when there is no significant lead to close (or too few seeds on any side)."""
    if min(len(reference), len(plain), len(gated)) < MIN_SEEDS:
        return None
    diff, p, _ = welch(reference, plain)
    lead = -diff if _higher(metric) else diff  # attention minus plain, in "better" units
    if p >= ALPHA or lead <= 0:
        return None
    won = statistics.fmean(gated) - statistics.fmean(plain)
    return (won if _higher(metric) else -won) / lead


__all__ = [
    "RULE",
    "Verdict",
    "below_floor",
    "compare",
    "gap_recovered",
    "near_floor",
    "still_improving",
    "welch",
]
