"""``globalconv report RUNS_DIR``: the runs in a directory turned into the answer.

Reads every run directory below RUNS_DIR (a folder with ``summary.json``; ``config.json`` and
``metrics.jsonl`` beside it) and any benchmark result (``bench*.json``), and writes
``report.md``, a self-contained ``report.html`` and the PNG plots into the output folder. Every
number in its tables is read from those files; nothing is typed in, except the literature table,
whose figures are quoted with their sources.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from globalconv import mixers  # noqa: E402
from globalconv.analysis import (  # noqa: E402
    circulant,
    literature,
    verdicts,
)
from globalconv.analysis import flops as flop_counts  # noqa: E402
from globalconv.analysis.document import (  # noqa: E402
    Bullets,
    Document,
    Heading,
    Image,
    Paragraph,
    Table,
)
from globalconv.analysis.kernel_plots import load_run, plot_kernel  # noqa: E402
from globalconv.analysis.literature import FINDINGS  # noqa: E402
from globalconv.core import io  # noqa: E402
from globalconv.core.io import RunFileError
from globalconv.core.stats import mean_std  # noqa: E402
from globalconv.train import protocol  # noqa: E402
from globalconv.train.records import read_metrics  # noqa: E402

REFERENCE = "attention"
CONV_FAMILY = (
    "global_conv",
    "gated_global_conv",
    "baseconv",
    "hyena",
    "fnet",
    "lightconv",
    "dynamicconv",
)


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    curve: list[tuple[int, float]]  # (step, training loss)
    valid_curve: list[tuple[int, float]]  # (step, validation metric)
    cell: str | None = None  # the protocol cell it belongs to (None: a plain run)
    role: str = "result"  # result | tuning (a grid point that was not chosen)

    @property
    def task(self) -> str:
        return self.summary["task"]

    @property
    def label(self) -> str:
        """The task as the comparison named it (a suite's label), else the task's name."""
        return self.cell.split("/", 1)[0] if self.cell else self.task

    @property
    def mixer(self) -> str:
        return self.summary["mixer"]

    @property
    def width(self) -> int:
        """The reference's width the model was sized to (its own width when not matched)."""
        model, match = self.config.get("model", {}), self.config.get("match", {})
        return int(match.get("reference_d_model") or model.get("d_model", 0))

    @property
    def layers(self) -> int:
        return int(self.config.get("model", {}).get("n_layers", 0))

    @property
    def key(self) -> tuple:
        return cell_key(self.label, self.config)

    @property
    def metric(self) -> str:
        return self.summary.get("metric", "accuracy")

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def floor(self) -> float | None:
        baseline = self.summary.get("baseline")
        return None if baseline is None else float(baseline["value"])

    @property
    def lr(self) -> float | None:
        return self.config.get("train", {}).get("lr")

    @property
    def improving(self) -> bool | None:
        steps = int(self.summary.get("steps_done") or self.summary.get("steps") or 0)
        return verdicts.still_improving(self.valid_curve, steps, self.metric)

    @property
    def score(self) -> float:
        key = "test_accuracy" if self.metric == "accuracy" else f"test_{self.metric}"
        if key not in self.summary:
            raise RunFileError(
                f"{self.path / 'summary.json'} has no {key!r}; rerun or remove the run"
            )
        return float(self.summary[key])


def _read_json(path: Path) -> dict[str, Any]:
    return io.read_json(path)  # checked; damaged or malformed: an error naming the file


def collect_runs(root: Path) -> list[Run]:
    """Every run directory below ``root`` (those with a summary.json), sorted by path.

    Where a protocol's ``selection.json`` sits above a run, the run belongs to that cell: its
    role is "result" if it is one of the cell's final (chosen) runs, else "tuning".
    """
    root = Path(root)
    finals: dict[Path, str] = {}
    cells: dict[Path, str] = {}
    for path in sorted(root.rglob(protocol.SELECTION)):
        record = _read_json(path)
        for name in record.get("final_runs", []):
            finals[path.parent / name] = record["cell"]
        for point in record.get("points", []):
            cells[path.parent / point["run"]] = record["cell"]
    runs = []
    for summary_path in sorted(root.rglob("summary.json")):
        folder = summary_path.parent
        summary = io.read_json(summary_path)  # a damaged file is an error naming that file
        config_path = folder / "config.json"
        config = io.read_json(config_path) if config_path.is_file() else {}
        if "task" not in summary or "mixer" not in summary:
            continue  # a sweep's aggregate summary, not a run
        metric = summary.get("metric", "accuracy")
        records = read_metrics(folder / "metrics.jsonl")
        curve = [(int(r["step"]), float(r["loss"])) for r in records if "loss" in r]
        valid = [(int(r["step"]), float(r[f"valid_{metric}"])) for r in records
                 if f"valid_{metric}" in r]  # fmt: skip
        cell = finals.get(folder) or cells.get(folder)
        role = "tuning" if cell and folder not in finals else "result"
        parent = folder.parent
        if cell is None and (parent / protocol.SELECTION).is_file():
            cell, role = _read_json(parent / protocol.SELECTION)["cell"], "tuning"
        runs.append(Run(folder, summary, config, curve, valid, cell, role))
    return runs


def _fmt(mean: float, std: float | None, n: int, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.2f}"
    return text + (f" ± {std * scale:.2f}" if n > 1 else "") + f" (n={n})"


# ---------------------------------------------------------------------------------------------
# the document


def build_report(root: Path, out: Path, *, width: int = 256, reference: Path | None = None) -> Path:
    """Write report.md, report.html and the plots for the runs under ``root``; returns out.

    reference: a directory of committed studies (``results/``); the results table then shows,
    beside each cell, the same cell's number there (same task label, mixer and depth).
    """
    root, out = Path(root), Path(out)
    everything = collect_runs(root)
    runs = [r for r in everything if r.role == "result"]
    if not runs:
        raise RunFileError(
            f"no runs under {root}: expected folders with summary.json (see globalconv train)"
        )
    out.mkdir(parents=True, exist_ok=True)
    doc = Document("Can self-attention be replaced by a global depthwise convolution?")
    doc.add(
        Paragraph(
            "The question: replace the self-attention of the Transformer by a per-channel "
            "convolution whose kernel is as long as the sequence, with circular padding, "
            "`y[t,c] = Σ_s W[s,c] · x[(t+s) mod L, c]`, stacked with nonlinearities, at "
            "comparable FLOPs. Does it work, and has it been studied? This report answers from "
            f"{len(runs)} training runs read from `{root}` and from the analytic costs of each "
            "mixer; every table below is computed from those files."
        )
    )
    doc.add(Heading("The answer, point by point"), Bullets(answer(runs, width)))
    doc.add(Paragraph(verdicts.RULE))
    known = reference_scores(reference) if reference is not None else None
    doc.add(Heading("Results per task"), Paragraph(budget_text(runs)), results_table(runs, known))
    doc.add(
        Image(
            plot_scores(runs, out / "scores.png"),
            "Test metric per task and mixer: mean over seeds, error bars (±1 std) where n ≥ 2, "
            "each seed a dot; the dashed line is the task's trivial floor.",
        )
    )
    by_width = plot_by_width(runs, out / "by_width.png")
    if by_width is not None:
        doc.add(
            Image(
                by_width,
                "Test metric against model width, one panel per task (as Zoology plots MQAR): "
                "mean over seeds, ±1 std where n ≥ 2; the dashed line is the trivial floor.",
            )
        )
    selections = selection_records(root)
    if selections:
        doc.add(
            Heading("Tuning on validation"),
            Paragraph(
                "Each cell's grid was trained at the tuning seed and scored on the validation "
                "split only; the best point (ties: lower validation loss) was then trained for "
                "every seed, and only those runs give the test numbers above."
            ),
            tuning_table(selections),
        )
    depth = depth_table(runs)
    if depth is not None:
        doc.add(Heading("Depth: does stacking more global convolutions close the gap?"), depth)
    curves = plot_curves(runs, out)
    if curves:
        doc.add(Heading("Learning curves"))
        doc.add(
            *[Image(p, f"Training loss and validation metric on {task}.") for task, p in curves]
        )
    doc.add(Heading("Cost"), *cost_section(runs, out, width))
    benches = sorted(root.rglob("bench*.json"))
    doc.add(
        Heading("Speed and memory"),
        Paragraph(
            "Milliseconds per forward+backward call (median of interleaved rounds); in brackets, "
            "attention's time divided by the mixer's at the same length, measured side by side; "
            "slope: the fitted exponent of time versus length over the longest 4× of lengths."
        ),
        *speed_section(benches, out),
    )
    pictures = mixing_section(runs, out)
    if pictures:
        doc.add(Heading("What the mixers learned"), *pictures)
    doc.add(*circulant.report_section(runs))
    doc.add(*literature.section(width))
    doc.add(Heading("The literature beside these numbers"), literature_table())
    doc.add(Heading("The runs"), runs_table(everything, root))
    io.write_text(out / "report.md", doc.markdown(out))
    io.write_text(out / "report.html", doc.html())
    return out


def _by(runs: list[Run], *keys: str) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, k) for k in keys)].append(run)
    return dict(sorted(groups.items()))


def selection_records(root: Path) -> list[dict[str, Any]]:
    return [_read_json(path) for path in sorted(Path(root).rglob(protocol.SELECTION))]


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


def budget_text(runs: list[Run]) -> str:
    parts = []
    for (label,), group in _by(runs, "label").items():
        steps = sorted({int(r.summary.get("steps_done", r.summary.get("steps", 0))) for r in group})
        tokens = sorted(
            {int(r.summary["train_tokens"]) for r in group if "train_tokens" in r.summary}
        )
        shown = "/".join(f"{t / 1e6:.3g}M" for t in tokens) if tokens else "?"
        parts.append(f"{label}: {'/'.join(map(str, steps))} steps, {shown} tokens seen")
    return "Budgets (per run): " + "; ".join(parts) + "."


def cell_key(label: str, config: dict[str, Any]) -> tuple:
    """What makes runs of two comparisons the same cell: the task as labelled and configured,
    the mixer, its depth, the reference width and the budget; not the seed or a tuned value."""
    model, train, match = (config.get(k, {}) for k in ("model", "train", "match"))
    task = config.get("task", {})
    setting = {
        "task": [task.get("name"), task.get("params"), task.get("valid_fraction")],
        "budget": [train.get("steps"), train.get("batch_size"), train.get("warmup_steps")],
        "match": match.get("by"),
    }
    width = int(match.get("reference_d_model") or model.get("d_model", 0))
    fingerprint = json.dumps(setting, sort_keys=True, default=str)
    return (label, model.get("mixer"), int(model.get("n_layers", 0)), width, fingerprint)


def reference_scores(root: Path) -> dict[tuple, str]:
    """``cell_key`` -> the cell's test result in the studies under ``root``."""
    if not Path(root).is_dir():
        return {}
    found = {}
    for (key,), group in _by([r for r in collect_runs(root) if r.role == "result"], "key").items():
        mean, std = mean_std([r.score for r in group])
        study = group[0].path.relative_to(root).parts[0]
        found[key] = f"{_fmt(mean, std, len(group), group[0].higher_is_better)} [{study}]"
    return found


def results_table(runs: list[Run], reference: dict[tuple, str] | None = None) -> Table:
    rows = []
    for (label, mixer, layers, width), group in _by(
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
                _fmt(mean, std, len(group), percent),
                "-" if floor is None else f"{floor * (100 if percent else 1):.2f}",
                "/".join(f"{lr:g}" for lr in lrs) or "-",
                f"{first.summary.get('params', 0):,}",
                f"{first.summary.get('flops_per_token') or 0:,.0f}",
                _improving_note(group),
                f"{statistics.fmean(r.summary.get('train_seconds', 0.0) for r in group):.1f}",
            ]
            + ([reference.get(first.key, "-")] if reference is not None else [])
        )
    header = ["task", "mixer", "layers", "width", "metric", "test (mean ± std)", "floor", "lr",
              "params", "FLOPs/token", "convergence", "train s"]  # fmt: skip
    if reference is not None:
        header.append("reference study (test)")
    return Table(header, rows)


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
        if record.get("fixed"):  # chosen elsewhere, not tuned here
            fixed = f"{_settings(record['fixed'])}, {record.get('fixed_from') or 'fixed'}"
            chosen = fixed if chosen == "-" else f"{chosen}; {fixed}"
        rows.append([record["cell"], key or "-", "; ".join(scored), chosen])
    return Table(["cell", "selected by", "validation score per grid point", "chosen"], rows)


def depth_table(runs: list[Run]) -> Table | None:
    """Metric by number of layers, for task/mixer pairs trained at several depths."""
    rows = []
    for (label, mixer), group in _by(runs, "label", "mixer").items():
        depths = _by(group, "layers")
        if len(depths) < 2:
            continue
        cells = []
        for (layers,), at_depth in depths.items():
            mean, std = mean_std([r.score for r in at_depth])
            cells.append(
                f"{layers}: {_fmt(mean, std, len(at_depth), at_depth[0].higher_is_better)}"
            )
        rows.append([label, f"`{mixer}`", "; ".join(cells)])
    return Table(["task", "mixer", "layers: test metric"], rows) if rows else None


def answer(runs: list[Run], width: int) -> list[str]:
    """The seed's question answered from the runs, by the rule in ``verdicts.RULE``."""
    points = []
    cells = _by(runs, "label", "layers", "width", "mixer")
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
            if any(r.improving for r in group + reference):
                caveat = " (still improving at the end of training: more steps could change this)"
            points.append(f"{where}: `{mixer}` {verdict.text}{caveat}.")
        plain = cells.get((label, layers, size, "global_conv"))
        gated = cells.get((label, layers, size, "gated_global_conv"))
        if plain and gated:
            share = verdicts.gap_recovered(ref_scores, [r.score for r in plain],
                                           [r.score for r in gated], metric=metric)  # fmt: skip
            if share is not None:
                gated_scores, plain_scores = [r.score for r in gated], [r.score for r in plain]
                diff, p, _ = verdicts.welch(plain_scores, gated_scores)  # gated minus plain
                if p < verdicts.ALPHA:
                    points.append(
                        f"{where}: gating (data-dependence) closes {100 * share:.0f}% of "
                        "attention's significant lead over the plain global convolution."
                    )
                else:  # a share of the gap would only restate noise
                    unit = " points" if metric == "accuracy" else ""
                    shown = 100 * diff if metric == "accuracy" else diff
                    points.append(
                        f"{where}: gating (data-dependence) does not significantly change the "
                        f"plain global convolution (difference {shown:+.1f}{unit}, p={p:.2g}), "
                        "so it closes none of attention's significant lead."
                    )
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
    return points


# ---------------------------------------------------------------------------------------------
# plots


def plot_scores(runs: list[Run], path: Path) -> Path:
    groups = _by(runs, "label")
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.6), squeeze=False)
    for ax, ((label,), group) in zip(axes[0], groups.items(), strict=True):
        per_mixer = _by(group, "mixer", "layers", "width")
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
        floor = group[0].floor
        if floor is not None:
            ax.axhline(
                floor,
                ls="--",
                lw=1,
                color="gray",
                label=f"floor ({group[0].summary['baseline']['what']})",
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
    groups = {k: g for k, g in _by(runs, "label").items() if len({r.width for r in g}) > 1}
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.4), squeeze=False)
    for ax, ((label,), group) in zip(axes[0], groups.items(), strict=True):
        for k, ((mixer,), members) in enumerate(_by(group, "mixer").items()):
            points = [
                (w, mean_std([r.score for r in g])) for (w,), g in _by(members, "width").items()
            ]
            widths = [w for w, _ in points]
            means = [m for _, (m, _) in points]
            stds = [sd or 0.0 for _, (_, sd) in points]
            ax.errorbar(widths, means, yerr=stds, marker="osd^v<>"[k % 7], ms=4, capsize=3,
                        lw=1.2, ls="-" if mixer == REFERENCE else ("--", ":")[k % 2],
                        color=_color(mixer), label=mixer)  # fmt: skip
        floor = group[0].floor
        if floor is not None:
            ax.axhline(floor, ls="--", lw=1, color="gray", label="floor")
        ax.set_xscale("log", base=2)
        ax.set_xticks(
            sorted({r.width for r in group}), [str(w) for w in sorted({r.width for r in group})]
        )
        ax.set_xlabel("model width")
        ax.set_ylabel(f"test {group[0].metric}")
        ax.set_title(label)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: list[Run], out: Path) -> list[tuple[str, Path]]:
    """Training loss (left) and validation metric (right) per task, one line per run."""
    made = []
    for (label,), group in _by(runs, "label").items():
        if not any(r.curve for r in group):
            continue
        fig, (ax, vax) = plt.subplots(1, 2, figsize=(10, 3.6))
        markers = "osd^v<>"
        for k, ((mixer,), mixer_runs) in enumerate(_by(group, "mixer").items()):
            for i, run in enumerate(mixer_runs):
                style = dict(lw=1, alpha=0.8, color=_color(mixer), marker=markers[k % 7],
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


def _color(name: str) -> str:
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return "#c44e52" if name == REFERENCE else palette[sum(map(ord, name)) % len(palette)]


def cost_section(runs: list[Run], out: Path, width: int) -> list:
    lengths = [2**k for k in range(6, 15)]
    names = sorted({r.mixer for r in runs} | {REFERENCE, "global_conv"})
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = []
    for name in names:
        per_token = []
        for L in lengths:
            with torch.device("meta"):  # shapes only: no memory for the parameters
                mixer = mixers.build(name, d_model=width, max_len=L)
            per_token.append(mixer.flops(L) / L)
        ax.loglog(lengths, per_token, marker="o", ms=3, label=name, color=_color(name))
        slope = math.log(per_token[-1] / per_token[-3]) / math.log(lengths[-1] / lengths[-3])
        rows.append([f"`{name}`"] + [f"{v:.3g}" for v in per_token[::2]] + [f"{slope:.2f}"])
    ax.set_xlabel("sequence length L")
    ax.set_ylabel(f"mixer FLOPs per token (D={width})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "flops.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    costs = [flop_counts.operator_costs(L, width) for L in (1024, 4096, 16384)]
    exact = Table(
        ["computation", "formula (one sequence)", "L=1024", "L=4096", "L=16384"],
        [
            ["direct global conv (the seed's)", "2·L²·D"]
            + [f"{c['direct_conv']:.3g}" for c in costs],
            ["FFT global conv", "D·(3·2.5·L·log2 L + 6·(L/2+1))"]
            + [f"{c['fft_conv']:.3g}" for c in costs],
            ["attention, mixing only", "4·L²·D + 5·H·L²"]
            + [f"{c['attention_mixing']:.3g}" for c in costs],
            ["attention with projections", "8·L·D² + 4·L²·D + 5·H·L²"]
            + [f"{c['attention_total']:.3g}" for c in costs],
        ],
    )
    return [
        Paragraph(
            "The seed writes both attention and the global convolution as O(L²·d). That is true of "
            "the convolution computed directly, but the convolution theorem computes it in "
            "O(L·d·log L); attention's L² cannot be removed that way because its mixing weights "
            f"depend on the input. Exact forward counts at D={width}, H=4 "
            "(a multiply-add is 2 FLOPs; "
            "a real FFT of size n is 2.5·n·log2 n):"
        ),
        exact,
        Image(path, f"Analytic mixer FLOPs per token versus length at D={width}."),
        Table(["mixer"] + [f"L={L}" for L in lengths[::2]] + ["log-log slope (last 4×)"], rows),
    ]


def speed_section(bench_files: list[Path], out: Path) -> list:
    """Plots and tables from benchmark JSON files (``globalconv bench ... --json``)."""
    records, operator_blocks = [], []
    for path in bench_files:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunFileError(f"{path} is not valid JSON ({err}); rerun the benchmark") from None
        for record in data.get("records", []):
            records.append({**record, "device": data.get("device", "?")})
        operator_blocks += operator_section(data)
    if not records:
        return operator_blocks or [
            Paragraph(
                "No benchmark results were found next to the runs. Run `globalconv bench mixers "
                "--json RUNS_DIR/bench.json` to add measured speed and memory versus length."
            )
        ]
    blocks = []
    for metric, label in [
        ("median_ms", "milliseconds (median)"),
        ("peak_mb", "peak extra memory (MB)"),
    ]:
        series = defaultdict(list)
        for r in records:
            if r.get(metric) is not None:
                series[(r["name"], r.get("pass", ""))].append((r["L"], r[metric]))
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for (name, kind), points in sorted(series.items()):
            points.sort()
            ax.loglog(
                *zip(*points, strict=True),
                marker="o",
                ms=3,
                label=f"{name} {kind}".strip(),
                color=_color(name),
                ls="-" if "backward" in kind or "bwd" in kind else "--",
            )
        ax.set_xlabel("sequence length L")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        devices = ", ".join(sorted({str(r["device"]) for r in records}))
        blocks.append(Image(path, f"{label} versus length, measured on {devices}."))
    blocks.append(speed_table(records))
    stopped = [
        f"`{r['name']}` stopped at L={r['L']}: {r['stopped']}" for r in records if "stopped" in r
    ]
    if stopped:
        blocks.append(Bullets(stopped))
    return blocks + operator_blocks


def operator_section(data: dict[str, Any]) -> list:
    """The operator against the FFT floor and attention, and where its time goes, from a
    ``globalconv bench op --json`` file (empty for other benchmarks)."""
    table, breakdown = data.get("table", []), data.get("breakdown", [])
    if not table and not breakdown:
        return []
    where = f"{data.get('device', '?')} ({data.get('where', '?')}), B={data.get('batch', '?')}, "
    where += f"D={data.get('dim', '?')}"
    blocks: list = [
        Paragraph(
            f"The operator itself (`globalconv bench op`, {where}): forward+backward of "
            "`global_conv` on (B, L, D) input against the FFT floor, one bare rfft+irfft pair "
            "over a contiguous (B, D, N) tensor, N the mode's transform length; and the "
            "`global_conv` mixer against the `attention` mixer at the same size."
        )
    ]
    ms = lambda seconds: "-" if seconds is None else f"{1e3 * seconds:.3g}"  # noqa: E731
    over = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"  # noqa: E731
    if table:
        header = ["mode", "L", "op ms", "floor ms", "op/floor", "mixer ms", "attention ms",
                  "attention/mixer"]  # fmt: skip
        rows = [
            [r["mode"], str(r["L"]), ms(r["op_s"]), ms(r["floor_s"]), over(r["op_s"], r["floor_s"]),
             ms(r.get("mixer_s")), ms(r.get("attention_s")),
             over(r.get("attention_s"), r.get("mixer_s"))]
            for r in table
        ]  # fmt: skip
        blocks.append(Table(header, rows))
    if breakdown:
        groups = ("transforms", "layout", "products", "other")
        blocks.append(
            Paragraph(
                "Where the operator's time goes (torch.profiler self time per aten operator), in "
                "units of the floor: transforms (rfft/irfft), layout changes between (B, L, D) "
                "and (B, D, N), spectral products, and the rest."
            )
        )
        rows = [
            [r["mode"], str(r["L"]), over(r["op_s"], r["floor_s"])]
            + [f"{r[f'{g}_share'] * r['op_s'] / r['floor_s']:.2f}" for g in groups]
            for r in breakdown
        ]
        blocks.append(Table(["mode", "L", "op/floor", *groups], rows))
    return blocks


def speed_table(records: list[dict[str, Any]]) -> Table:
    """Forward+backward ms per length, with attention's time over each mixer's beside it,
    and the fitted log-log slope over the longest 4x of lengths."""
    from globalconv.analysis.bench_mixers import fit_slope

    timed = [r for r in records if r.get("median_ms") is not None]
    kind = "forward+backward" if any(r.get("pass") == "forward+backward" for r in timed) else None
    timed = [r for r in timed if r.get("pass") == kind]
    lengths = sorted({r["L"] for r in timed})
    ref = {r["L"]: r["median_ms"] for r in timed if r["name"] == REFERENCE}
    rows = []
    for name in dict.fromkeys(r["name"] for r in timed):
        at = {r["L"]: r["median_ms"] for r in timed if r["name"] == name}
        cells = []
        for L in lengths:
            if L not in at:
                cells.append("-")
            elif L in ref and name != REFERENCE:
                cells.append(f"{at[L]:.3g} ({ref[L] / at[L]:.1f}×)")
            else:
                cells.append(f"{at[L]:.3g}")
        top = max(at)
        slope = fit_slope([(L, t) for L, t in sorted(at.items()) if L >= top / 4])
        rows.append([f"`{name}`", *cells, "-" if slope is None else f"{slope:.2f}"])
    header = ["mixer", *[f"L={L}" for L in lengths], "slope"]
    return Table(header, rows)


def mixing_section(runs: list[Run], out: Path) -> list:
    """A trained global kernel, and its mixing matrix beside attention's map on one input."""
    from globalconv import tasks
    from globalconv.analysis import mixing

    trained = lambda r: (r.path / "model.safetensors").is_file()  # noqa: E731
    conv = next((r for r in runs if r.mixer == "global_conv" and trained(r)), None)
    if conv is None:
        return []
    cfg, model = load_run(conv.path)
    kernel_module = model.blocks[0].mixer.kernel
    task = tasks.build(cfg.task.name, cfg.task.params)
    inputs, _ = task.splits()["test"].batch(torch.arange(1))
    L = inputs["inputs"].shape[1]
    with torch.no_grad():
        kernel = kernel_module(L)
    path = out / "global_conv_kernel.png"
    title = f"first-layer {kernel_module.name} kernel of {conv.path.name} ({conv.task})"
    io.write_bytes(path, plot_kernel(kernel, kernel_module.mode, title, channels=8))
    blocks = [
        Image(
            path,
            f"The {title}: taps over offset for every channel, a few channels' taps, "
            "and their magnitude spectra.",
        )
    ]
    attn = next(
        (r for r in runs if r.mixer == REFERENCE and r.task == conv.task and trained(r)), None
    )
    if attn is None or kernel_module.mode != "circular":
        return blocks
    _, attn_model = load_run(attn.path)
    with torch.no_grad():
        weights = mixing.attention_weights(
            attn_model.blocks[0].mixer, attn_model.embed_inputs(inputs["inputs"])[0]
        )
    matrix = mixing.circulant(kernel.detach())  # the skip term only adds the identity: left out
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    axes[0].imshow(matrix.abs().mean(0).numpy(), cmap="viridis")
    axes[0].set_title("global_conv |M| (fixed)")
    axes[1].imshow(weights.mean(0).numpy(), cmap="viridis")
    axes[1].set_title("attention weights (this input)")
    for ax in axes:
        ax.set_xlabel("input position j")
        ax.set_ylabel("output position t")
    fig.tight_layout()
    path = out / "mixing_vs_attention.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    blocks.append(
        Image(
            path,
            "First-layer token mixing on the same test input: the global convolution's "
            "circulant matrix (mean |M| over channels, skip term left out) is fixed; "
            "attention's is computed from the input.",
        )
    )
    return blocks


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
            str(r.summary.get("seed", "")),
            str(r.summary.get("steps", "")),
            r.role,
            f"{r.score:.4f}",
        ]
        for r in runs
    ]
    header = ["run", "task", "mixer", "layers", "seed", "steps", "role", "test metric"]
    return Table(header, rows)
