"""The report's tables and the answer: results per cell with the verdicts, tuning, depth,
budgets, the literature and the list of runs."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from globalconv.analysis import flops as flop_counts
from globalconv.analysis import verdicts
from globalconv.analysis.document import Table
from globalconv.analysis.literature import FINDINGS
from globalconv.analysis.report.runs import REFERENCE, Run, format_score, group_by
from globalconv.core.stats import mean_std

SEED_OPERATOR = "global_conv"


def answer(runs: list[Run], width: int) -> list[str]:
    """The seed's question answered from the runs, by the rule in ``verdicts.RULE``."""
    return answer_and_summary(runs, width)[0]


def answer_and_summary(runs: list[Run], width: int) -> tuple[list[str], str]:
    """The answer point by point, and the same verdicts for the seed's operator in a few
    sentences: where it beats, matches or falls short of attention, what gating and depth
    recover (``in_short``)."""
    points = []
    operator: dict[str, list[str]] = defaultdict(list)  # verdict word -> where (with the size)
    gating: dict[str, list[str]] = defaultdict(list)  # what gating did -> where
    cells = group_by(runs, "label", "layers", "width", "mixer")
    settings_of = defaultdict(set)
    for label, layers, size, _ in cells:
        settings_of[label].add((layers, size))
    for label, layers, size in sorted({key[:3] for key in cells}):
        reference = cells.get((label, layers, size, REFERENCE))
        if reference is None:
            continue
        where = label
        if len({d for d, _ in settings_of[label]}) > 1:
            where += f", {layers} layer{'s' * (layers != 1)}"
        if len({w for _, w in settings_of[label]}) > 1:
            where += f", width {size}"
        metric, floor = reference[0].metric, reference[0].floor
        ref_scores = [r.score for r in reference]
        for (t, d, w, mixer), group in cells.items():
            if (t, d, w) != (label, layers, size) or mixer == REFERENCE:
                continue
            verdict = verdicts.compare(ref_scores, [r.score for r in group], metric=metric,
                                       floor=floor)  # fmt: skip
            caveat = ""
            improving = any(r.improving for r in group + reference)
            if improving:
                caveat = " (still improving at the end of training: more steps could change this)"
            points.append(f"{where}: `{mixer}` {verdict.text}{caveat}.")
            if mixer == SEED_OPERATOR:
                details = [*_size(verdict), *(["still improving"] if improving else [])]
                shown = f"{where} ({', '.join(details)})" if details else where
                operator[verdict.word or "no verdict"].append(shown)
        plain = cells.get((label, layers, size, "global_conv"))
        gated = cells.get((label, layers, size, "gated_global_conv"))
        # only a lead the verdict itself states (not one between two models at the floor)
        short = plain and verdicts.compare(ref_scores, [r.score for r in plain], metric=metric,
                                           floor=floor).word == "falls short of"  # fmt: skip
        if short and gated:
            share = verdicts.gap_recovered(ref_scores, [r.score for r in plain],
                                           [r.score for r in gated], metric=metric)  # fmt: skip
            if share is not None:
                gated_scores, plain_scores = [r.score for r in gated], [r.score for r in plain]
                diff, p, _ = verdicts.welch(plain_scores, gated_scores)  # gated minus plain
                if p < verdicts.ALPHA:
                    lead = "attention's significant lead over the plain global convolution"
                    points.append(f"{where}: gating (data-dependence) {_share_words(share, lead)}.")
                    gating[_share_words(share, "it")].append(where)
                else:  # a share of the gap would only restate noise
                    sign = "+" if diff >= 0 else "-"
                    shown = sign + verdicts.show(abs(diff), metric, points=True)
                    points.append(
                        f"{where}: gating (data-dependence) does not significantly change the "
                        f"plain global convolution (difference {shown}, p={p:.2g}), "
                        "so it closes none of attention's significant lead."
                    )
                    gating["closes none of it"].append(where)
    depth = depth_points(runs)
    points += depth
    if not points:
        points.append("No task has both attention and another mixer; run `globalconv compare`.")
    L = 4096
    costs = flop_counts.operator_costs(L, width)
    points.append(
        f"Cost at L={L}, D={width}: the seed's direct global convolution needs "
        f"{costs['direct_conv']:.3g} FLOPs per sequence (O(L²·D), as the seed says, the same order "
        "as "
        f"attention's mixing {costs['attention_mixing']:.3g}); computed with FFTs it needs "
        f"{costs['fft_conv']:.3g}, {costs['attention_mixing'] / costs['fft_conv']:.0f}× fewer than "
        "attention's mixing. The FFT path costs fewer FLOPs than the direct one from "
        f"L={flop_counts.crossover_length('fft_conv', 'direct_conv', width)} and than attention's "
        f"mixing from L={flop_counts.crossover_length('fft_conv', 'attention_mixing', width)}."
    )
    return points, in_short(operator, gating, depth)


def _share_words(share: float, lead: str) -> str:
    """What gating did to attention's ``lead``, as a share of it: closes part, widens it, or
    more than closes it."""
    if share < 0:
        return f"widens {lead} by {100 * -share:.0f}%"
    if share > 1:
        return f"more than closes {lead} ({100 * share:.0f}% of it)"
    return f"closes {100 * share:.0f}% of {lead}"


def _size(verdict: verdicts.Verdict) -> list[str]:
    """The verdict's size: 'by X' for a difference, 'difference X, p=Y' when indistinguishable."""
    if verdict.word in ("beats", "falls short of") and " by " in verdict.text:
        return [f"by {verdict.text.split(' by ', 1)[1].split(' (')[0]}"]
    if verdict.word == "indistinguishable from" and verdict.p_value is not None:
        return [verdict.text.split("(", 1)[1].split(", n=")[0]]
    return []


def in_short(operator: dict[str, list[str]], gating: dict[str, list[str]], depth: list[str]) -> str:
    """The seed's operator's verdicts against attention in a few sentences."""
    if not operator:
        return ""
    said = {
        "beats": "It beats attention on {}.",
        "indistinguishable from": "It is indistinguishable from attention on {}.",
        "falls short of": "It falls short of attention on {}.",
        "neither learned": "Neither it nor attention learned {}.",
        "no verdict": "It has too few seeds for a verdict on {}.",
    }
    sentences = [f"In short, for the seed's operator (`{SEED_OPERATOR}`):"]
    sentences += [said[w].format(_and(operator[w])) for w in said if operator.get(w)]
    if gating:
        done = _and([f"{what} on {_and(where)}" for what, where in gating.items()])
        sentences.append(f"Of attention's significant lead, gating (`gated_global_conv`) {done}.")
    sentences += [d for d in depth if f"`{SEED_OPERATOR}`" in d]
    return " ".join(sentences)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def depth_points(runs: list[Run]) -> list[str]:
    """For each task and mixer trained at several depths: the change from the shallowest to the
    deepest model, by Welch's test when both have enough seeds, and the best depth when it lies
    between them."""
    points = []
    for (label, width, mixer), group in group_by(runs, "label", "width", "mixer").items():
        depths = group_by(group, "layers")
        if len(depths) < 2:
            continue
        (low,), (high,) = min(depths), max(depths)
        metric, floor = group[0].metric, group[0].floor
        scores_at = {d: [r.score for r in g] for (d,), g in depths.items()}
        mean_at = {d: statistics.fmean(s) for d, s in scores_at.items()}
        lows, highs = scores_at[low], scores_at[high]
        means = "; ".join(f"{d}: {verdicts.show(m, metric)}" for d, m in mean_at.items())
        several_widths = len({r.width for r in runs if r.label == label}) > 1
        where = f"{label}, width {width}" if several_widths else label
        said = f"{where}: `{mixer}` from {low} to {high} layers ({means})"
        if min(len(lows), len(highs)) < verdicts.MIN_SEEDS:
            points.append(f"{said}: too few seeds to say whether depth changes it.")
            continue
        floored = {d for d, m in mean_at.items() if verdicts.near_floor(m, floor, metric)}
        worse = [d for d, m in mean_at.items() if verdicts.below_floor(m, floor, metric)]
        if floored == set(mean_at):
            if worse:
                where_worse = ", ".join(f"{d} layers" for d in worse)
                points.append(f"{said}: never clear of the chance margin of the floor, and worse "
                              f"than it at {where_worse}.")  # fmt: skip
            else:
                points.append(f"{said}: within the chance margin of the floor at every depth.")
            continue
        peak = _peak(scores_at, mean_at, low, high, group[0].higher_is_better, metric)
        if low in floored and high in floored:  # a change between two floor-level scores is noise
            above = ", ".join(str(d) for d in mean_at if d not in floored)
            points.append(f"{said}: within the chance margin of the floor at {low} and {high} "
                          f"layers; clear of it only at {above} layers{peak}.")  # fmt: skip
            continue
        diff, p, _ = verdicts.welch(lows, highs)
        change = verdicts.show(abs(diff), metric, points=True)
        if p < verdicts.ALPHA:
            better = diff > 0 if group[0].higher_is_better else diff < 0
            word = "improves" if better else "worsens"
            points.append(f"{said}: depth {word} it by {change} (p={p:.2g}){peak}.")
        else:
            points.append(
                f"{said}: depth does not change it significantly ({change}, p={p:.2g}){peak}."
            )
    return points


def _peak(
    scores_at: dict[int, list[float]],
    mean: dict[int, float],
    low: int,
    high: int,
    higher: bool,
    metric: str,
) -> str:
    """'; its best depth lies between them: ...' where a depth between the ends, with enough
    seeds, beats the better end by Welch's test (the ends alone can hide a model that learns at
    middle depths only); depths indistinguishable from the best are named with it."""
    middle = [d for d in scores_at if d not in (low, high)
              and len(scores_at[d]) >= verdicts.MIN_SEEDS]  # fmt: skip
    if not middle:
        return ""
    pick = max if higher else min
    best = pick(middle, key=mean.get)
    end = pick((low, high), key=mean.get)
    diff, p, _ = verdicts.welch(scores_at[end], scores_at[best])
    if p >= verdicts.ALPHA or (diff > 0) != higher:
        return ""
    ties = [d for d in middle if d == best or verdicts.welch(scores_at[best], scores_at[d])[1]
            >= verdicts.ALPHA]  # fmt: skip
    shown = "; ".join(f"{d} layers ({verdicts.show(mean[d], metric)})" for d in ties)
    return f"; its best depth lies between them: {shown}"


def budget_text(runs: list[Run]) -> str:
    parts = []
    for (label,), group in group_by(runs, "label").items():
        steps = sorted({r.summary.trained_steps for r in group})
        tokens = sorted(
            {r.summary.train_tokens for r in group if r.summary.train_tokens is not None}
        )
        shown = "/".join(f"{t / 1e6:.3g}M" for t in tokens) if tokens else "?"
        parts.append(f"{label}: {'/'.join(map(str, steps))} steps, {shown} tokens seen")
    return "Budgets (per run): " + "; ".join(parts) + "."


def _settings(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "-"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v:g}" if isinstance(v, float) else
                     f"{k.rsplit('.', 1)[-1]}={v}" for k, v in settings.items())  # fmt: skip


def _improving_note(group: list[Run]) -> str:
    flags = [r.improving for r in group]
    if any(flags):
        return f"still improving ({sum(bool(f) for f in flags)}/{len(flags)} seeds)"
    if all(f is False for f in flags):
        return "converged"
    return "no validation curve"


def results_table(runs: list[Run], reference: dict[tuple, str] | None = None) -> Table:
    rows = []
    for (label, mixer, layers, width), group in group_by(
        runs, "label", "mixer", "layers", "width"
    ).items():
        mean, std = mean_std([r.score for r in group])
        first = group[0]
        percent = first.metric == "accuracy"
        floor = first.floor
        lrs = sorted({r.lr for r in group if r.lr is not None})
        rows.append(
            [
                label,
                f"`{mixer}`",
                str(layers),
                str(width),
                first.metric,
                format_score(mean, std, len(group), percent),
                "-" if floor is None else f"{floor * (100 if percent else 1):.2f}",
                "/".join(f"{lr:g}" for lr in lrs) or "-",
                f"{first.summary.params or 0:,}",
                f"{first.summary.flops_per_token or 0:,.0f}",
                _improving_note(group),
                f"{statistics.fmean(r.summary.train_seconds or 0.0 for r in group):.1f}",
            ]
            + ([reference.get(first.key, "-")] if reference is not None else [])
        )
    header = ["task", "mixer", "layers", "width", "metric", "test (mean ± std)", "floor", "lr",
              "params", "FLOPs/token", "convergence", "train s"]  # fmt: skip
    if reference is not None:
        header.append("reference study (test)")
    return Table(header, rows)


def widened_note(widened: dict[str, list[Any]] | None) -> str:
    """' (grid widened at its edge by lr=0.03)' for a selection record's ``widened``, or ''."""
    added = [_settings({key: v}) for key, values in (widened or {}).items() for v in values]
    return f" (grid widened at its edge by {', '.join(added)})" if added else ""


def tuning_table(records: list[dict[str, Any]]) -> Table:
    rows = []
    for record in records:
        key = record.get("selected_by")
        scored = []
        for point in record["points"]:
            value = (point.get("valid") or {}).get(key)
            shown = "failed" if value is None else f"{value:.4f}"
            scored.append(f"{_settings(point['settings'])}: {shown}")
        chosen = _settings(record["chosen"]) if record["chosen"] is not None else "none"
        if record.get("at_edge"):
            chosen += f" (at the grid's edge in {', '.join(record['at_edge'])}: widen it)"
        chosen += widened_note(record.get("widened"))
        if record.get("fixed"):  # chosen elsewhere, not tuned here
            fixed = f"{_settings(record['fixed'])}, {record.get('fixed_from') or 'fixed'}"
            chosen = fixed if chosen == "-" else f"{chosen}; {fixed}"
        rows.append([record["cell"], key or "-", "; ".join(scored), chosen])
    return Table(["cell", "selected by", "validation score per grid point", "chosen"], rows)


def depth_table(runs: list[Run]) -> Table | None:
    """Metric by number of layers, for task/mixer pairs trained at several depths."""
    rows = []
    for (label, width, mixer), group in group_by(runs, "label", "width", "mixer").items():
        depths = group_by(group, "layers")
        if len(depths) < 2:
            continue
        several_widths = len({r.width for r in runs if r.label == label}) > 1
        where = f"{label}, width {width}" if several_widths else label
        cells = []
        for (layers,), at_depth in depths.items():
            mean, std = mean_std([r.score for r in at_depth])
            cells.append(
                f"{layers}: {format_score(mean, std, len(at_depth), at_depth[0].higher_is_better)}"
            )
        rows.append([where, f"`{mixer}`", "; ".join(cells)])
    return Table(["task", "mixer", "layers: test metric"], rows) if rows else None


def literature_table() -> Table:
    return Table(
        ["work", "setting", "published result", "what it says here", "how our setting differs"],
        [
            [f"{f.work} ({f.source})", f.setting, f.result, f.bearing, f.versus_ours]
            for f in FINDINGS
        ],
    )


def runs_table(runs: list[Run], root: Path) -> Table:
    rows = [
        [
            str(r.path.relative_to(root)),
            r.task,
            f"`{r.mixer}`",
            str(r.layers),
            "" if r.summary.seed is None else str(r.summary.seed),
            "" if r.summary.steps is None else str(r.summary.steps),
            r.role,
            f"{r.score:.4f}",
        ]
        for r in runs
    ]
    header = ["run", "task", "mixer", "layers", "seed", "steps", "role", "test metric"]
    return Table(header, rows)
