"""The report's plots of the results: scores per cell, scores against width and depth, learning
curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from globalconv.analysis.report.runs import REFERENCE, Run, group_by
from globalconv.core.stats import mean_std


def plot_scores(runs: list[Run], path: Path) -> Path:
    groups = group_by(runs, "label")
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.6), squeeze=False)
    for ax, ((label,), group) in zip(axes[0], groups.items(), strict=True):
        per_mixer = group_by(group, "mixer", "layers", "width")
        depths = len({d for _, d, _ in per_mixer}) > 1  # label depths and widths when they vary
        widths = len({w for _, _, w in per_mixer}) > 1
        names = [m + (f" {d}L" if depths else "") + (f" d{w}" if widths else "")
                 for (m, d, w) in per_mixer]  # fmt: skip
        for i, ((mixer, _, _), members) in enumerate(per_mixer.items()):
            scores = [r.score for r in members]
            mean, std = mean_std(scores)
            ax.bar(i, mean, color="#c44e52" if mixer == REFERENCE else "#4c72b0", alpha=0.85,
                   yerr=std if len(scores) >= 2 else None, capsize=3)  # fmt: skip
            ax.plot([i] * len(scores), scores, "o", ms=3, color="black", zorder=3)
        baseline = group[0].summary.baseline
        if baseline is not None:
            ax.axhline(
                baseline.value, ls="--", lw=1, color="gray", label=f"floor ({baseline.what})"
            )
            ax.legend(fontsize=6, loc="lower right")
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(label)
        ax.set_ylabel(group[0].metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_by_width(runs: list[Run], path: Path) -> Path | None:
    """Test metric against width per task, one line per mixer; None unless some task was run
    at two widths or more."""
    return _plot_against(runs, path, "width", "model width")


def plot_by_depth(runs: list[Run], path: Path) -> Path | None:
    """Test metric against the number of layers per task, one line per mixer; None unless some
    task was run at two depths or more."""
    return _plot_against(runs, path, "layers", "layers")


def _plot_against(runs: list[Run], path: Path, axis: str, xlabel: str) -> Path | None:
    """One panel per task (and per value of the other size axis) where ``axis`` takes two values
    or more: the mean over seeds of each mixer against it, ±1 std where n ≥ 2, on a log2 axis."""
    other = "layers" if axis == "width" else "width"
    groups = {k: g for k, g in group_by(runs, "label", other).items()
              if len({getattr(r, axis) for r in g}) > 1}  # fmt: skip
    if not groups:
        return None
    several = {label for label, _ in groups if sum(k[0] == label for k in groups) > 1}
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.4), squeeze=False)
    for ax, ((label, size), group) in zip(axes[0], groups.items(), strict=True):
        for k, ((mixer,), members) in enumerate(group_by(group, "mixer").items()):
            points = [
                (x, mean_std([r.score for r in g])) for (x,), g in group_by(members, axis).items()
            ]
            xs = [x for x, _ in points]
            means = [m for _, (m, _) in points]
            stds = [sd or 0.0 for _, (_, sd) in points]
            ax.errorbar(xs, means, yerr=stds, marker="osd^v<>"[k % 7], ms=4, capsize=3,
                        lw=1.2, ls="-" if mixer == REFERENCE else ("--", ":")[k % 2],
                        color=color(mixer), label=mixer)  # fmt: skip
        floor = group[0].floor
        if floor is not None:
            ax.axhline(floor, ls="--", lw=1, color="gray", label="floor")
        ticks = sorted({getattr(r, axis) for r in group})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {group[0].metric}")
        shown = {"layers": f"{size} layers", "width": f"width {size}"}[other]
        ax.set_title(f"{label}, {shown}" if label in several else label)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: list[Run], out: Path) -> list[tuple[str, Path]]:
    """Training loss (left) and validation metric (right) per task, one line per run."""
    made = []
    for (label,), group in group_by(runs, "label").items():
        if not any(r.curve for r in group):
            continue
        fig, (ax, vax) = plt.subplots(1, 2, figsize=(10, 3.6))
        markers = "osd^v<>"
        for k, ((mixer,), mixer_runs) in enumerate(group_by(group, "mixer").items()):
            for i, run in enumerate(mixer_runs):
                style = dict(lw=1, alpha=0.8, color=color(mixer), marker=markers[k % 7],
                             markevery=0.2, ms=3, label=mixer if i == 0 else None)  # fmt: skip
                if run.curve:
                    ax.plot(*zip(*run.curve, strict=True), **style)
                if run.valid_curve:
                    vax.plot(*zip(*run.valid_curve, strict=True), **style)
        losses = [v for r in group for _, v in r.curve if v > 0]
        if losses and max(losses) / min(losses) > 10:  # a log axis only for a wide range
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        vax.set_xlabel("step")
        vax.set_ylabel(f"validation {group[0].metric}")
        if group[0].floor is not None:
            vax.axhline(group[0].floor, ls="--", lw=1, color="gray")
        ax.set_title(label)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"curves_{_file_safe(label)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append((label, path))
    return made


def _file_safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def color(name: str) -> str:
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return "#c44e52" if name == REFERENCE else palette[sum(map(ord, name)) % len(palette)]
