"""``globalconv report RUNS_DIR``: the runs in a directory turned into the answer.

Reads every run directory below RUNS_DIR (a folder with ``summary.json``; ``config.json`` and
``metrics.jsonl`` beside it) and any benchmark result (``bench*.json``), and writes
``report.md``, a self-contained ``report.html`` and the PNG plots into the output folder. Every
number in its tables is read from those files; nothing is typed in, except the literature table,
whose figures are quoted with their sources.
"""

from __future__ import annotations

import argparse
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
from globalconv.analysis import flops as flop_counts  # noqa: E402
from globalconv.analysis.document import (  # noqa: E402
    Bullets,
    Document,
    Heading,
    Image,
    Paragraph,
    Table,
)
from globalconv.analysis.literature import FINDINGS  # noqa: E402
from globalconv.arguments import positive_int
from globalconv.kernels.plot import load_run, plot_kernel  # noqa: E402
from globalconv.train import io  # noqa: E402
from globalconv.train.records import read_metrics  # noqa: E402

REFERENCE = "attention"
CONV_FAMILY = ("global_conv", "gated_global_conv", "hyena", "fnet", "lightconv", "dynamicconv")


@dataclass
class Run:
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any]
    curve: list[tuple[int, float]]  # (step, training loss)

    @property
    def task(self) -> str:
        return self.summary["task"]

    @property
    def mixer(self) -> str:
        return self.summary["mixer"]

    @property
    def layers(self) -> int:
        return int(self.config.get("model", {}).get("n_layers", 0))

    @property
    def higher_is_better(self) -> bool:
        return self.summary.get("metric", "accuracy") == "accuracy"

    @property
    def score(self) -> float:
        metric = self.summary.get("metric", "accuracy")
        key = "test_accuracy" if metric == "accuracy" else f"test_{metric}"
        if key not in self.summary:
            raise ValueError(
                f"{self.path / 'summary.json'} has no {key!r}; rerun or remove the run"
            )
        return float(self.summary[key])


def collect_runs(root: Path) -> list[Run]:
    """Every run directory below ``root`` (those with a summary.json), sorted by path."""
    runs = []
    for summary_path in sorted(Path(root).rglob("summary.json")):
        folder = summary_path.parent
        summary = io.read_json(summary_path)  # a damaged file is an error naming that file
        config_path = folder / "config.json"
        config = io.read_json(config_path) if config_path.is_file() else {}
        if "task" not in summary or "mixer" not in summary:
            continue  # a sweep's aggregate summary, not a run
        runs.append(Run(folder, summary, config, _read_curve(folder / "metrics.jsonl")))
    return runs


def _read_curve(path: Path) -> list[tuple[int, float]]:
    records = read_metrics(path)
    return [(int(r["step"]), float(r["loss"])) for r in records if "loss" in r and "step" in r]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(mean: float, std: float, n: int, percent: bool) -> str:
    scale, unit = (100.0, "") if percent else (1.0, "")
    text = f"{mean * scale:.2f}{unit}"
    return text + (f" ± {std * scale:.2f}" if n > 1 else "") + f" (n={n})"


# ---------------------------------------------------------------------------------------------
# the document


def build_report(root: Path, out: Path, *, width: int = 256) -> Path:
    """Write report.md, report.html and the plots for the runs under ``root``; returns out."""
    root, out = Path(root), Path(out)
    runs = collect_runs(root)
    if not runs:
        raise ValueError(
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
    table = results_table(runs)
    doc.add(Heading("The answer, point by point"), Bullets(answer(runs, width)))
    doc.add(Heading("Results per task"), table)
    doc.add(
        Image(
            plot_scores(runs, out / "scores.png"),
            "Test metric per task and mixer (mean ± std over seeds).",
        )
    )
    depth = depth_table(runs)
    if depth is not None:
        doc.add(Heading("Depth: does stacking more global convolutions close the gap?"), depth)
    curves = plot_curves(runs, out)
    if curves:
        doc.add(Heading("Learning curves"))
        doc.add(*[Image(p, f"Training loss on {task}.") for task, p in curves])
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
    doc.add(Heading("The literature beside these numbers"), literature_table())
    doc.add(Heading("The runs"), runs_table(runs, root))
    io.write_text(out / "report.md", doc.markdown(out))
    io.write_text(out / "report.html", doc.html())
    return out


def _by(runs: list[Run], *keys: str) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, k) for k in keys)].append(run)
    return dict(sorted(groups.items()))


def results_table(runs: list[Run]) -> Table:
    rows = []
    for (task, mixer, layers), group in _by(runs, "task", "mixer", "layers").items():
        mean, std = mean_std([r.score for r in group])
        metric = group[0].summary.get("metric", "accuracy")
        rows.append(
            [
                task,
                f"`{mixer}`",
                str(layers),
                metric,
                _fmt(mean, std, len(group), metric == "accuracy"),
                f"{group[0].summary.get('params', 0):,}",
                f"{group[0].summary.get('flops_per_token', 0):,.0f}",
                f"{statistics.fmean(r.summary.get('train_seconds', 0.0) for r in group):.1f}",
            ]
        )
    return Table(
        [
            "task",
            "mixer",
            "layers",
            "metric",
            "test (mean ± std)",
            "params",
            "FLOPs/token",
            "train s",
        ],
        rows,
    )


def depth_table(runs: list[Run]) -> Table | None:
    """Metric by number of layers, for task/mixer pairs trained at several depths."""
    rows = []
    for (task, mixer), group in _by(runs, "task", "mixer").items():
        depths = _by(group, "layers")
        if len(depths) < 2:
            continue
        cells = []
        for (layers,), at_depth in depths.items():
            mean, std = mean_std([r.score for r in at_depth])
            cells.append(
                f"{layers}: {_fmt(mean, std, len(at_depth), at_depth[0].higher_is_better)}"
            )
        rows.append([task, f"`{mixer}`", "; ".join(cells)])
    return Table(["task", "mixer", "layers: test metric"], rows) if rows else None


def answer(runs: list[Run], width: int) -> list[str]:
    """The seed's question answered from the runs: matches, failures, gating, cost."""
    points = []
    # compared at equal depth: a suite that varies depth gets one comparison per depth
    scores = {
        k: mean_std([r.score for r in g]) + (len(g), g[0].higher_is_better)
        for k, g in _by(runs, "task", "layers", "mixer").items()
    }
    depths_of = defaultdict(set)
    for task, layers, _ in scores:
        depths_of[task].add(layers)
    for task, layers in sorted({(t, d) for t, d, _ in scores}):
        if (task, layers, REFERENCE) not in scores:
            continue
        where = (
            task if len(depths_of[task]) == 1 else f"{task}, {layers} layer{'s' * (layers != 1)}"
        )
        ref_mean, ref_std, _, higher = scores[(task, layers, REFERENCE)]
        for (t, d, mixer), (mean, std, _, _) in scores.items():
            if (t, d) != (task, layers) or mixer == REFERENCE:
                continue
            gap = (mean - ref_mean) if higher else (ref_mean - mean)  # > 0: better than attention
            noise = max(ref_std, std, 0.005 if higher else 0.01)
            unit = "points" if higher else "bits"
            size = abs(gap) * (100 if higher else 1)
            if abs(gap) <= noise:
                verdict = (
                    f"matches attention (difference {size:.2f} {unit}, within the seeds' spread)"
                )
            elif gap > 0:
                verdict = f"beats attention by {size:.2f} {unit}"
            else:
                verdict = f"falls short of attention by {size:.2f} {unit}"
            points.append(f"{where}: `{mixer}` {verdict}.")
        plain = scores.get((task, layers, "global_conv"))
        gated = scores.get((task, layers, "gated_global_conv"))
        if plain and gated:
            lost = (ref_mean - plain[0]) if higher else (plain[0] - ref_mean)
            won = (gated[0] - plain[0]) if higher else (plain[0] - gated[0])
            if lost > abs(noise):
                share = max(100 * won / lost, 0.0)
                points.append(
                    f"{where}: gating (data-dependence) recovers {share:.0f}% of the gap "
                    "between the plain global convolution and attention."
                )
    if not points:
        points.append("No task has both attention and another mixer; run `globalconv compare`.")
    elif any(n == 1 for _, _, n, _ in scores.values()):
        points.append(
            "Some results rest on one seed (n=1): their spread is unknown, so differences of a "
            "point or two are not evidence; rerun with `--seeds 0,1,2` to measure it."
        )
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
    groups = _by(runs, "task")
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.4), squeeze=False)
    for ax, ((task,), group) in zip(axes[0], groups.items(), strict=True):
        per_mixer = _by(group, "mixer", "layers")
        several = len({layers for _, layers in per_mixer}) > 1  # label depths when they vary
        names = [f"{m} ({d}L)" if several else m for (m, d) in per_mixer]
        stats = [mean_std([r.score for r in g]) for g in per_mixer.values()]
        colors = ["#c44e52" if m == REFERENCE else "#4c72b0" for (m, _) in per_mixer]
        ax.bar(
            range(len(names)),
            [m for m, _ in stats],
            yerr=[s for _, s in stats],
            color=colors,
            capsize=3,
        )
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
        ax.set_title(task)
        ax.set_ylabel(group[0].summary.get("metric", "accuracy"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(runs: list[Run], out: Path) -> list[tuple[str, Path]]:
    made = []
    for (task,), group in _by(runs, "task").items():
        if not any(r.curve for r in group):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for (mixer,), mixer_runs in _by(group, "mixer").items():
            for i, run in enumerate(r for r in mixer_runs if r.curve):
                steps, losses = zip(*run.curve, strict=True)
                ax.plot(
                    steps,
                    losses,
                    lw=1,
                    alpha=0.8,
                    label=mixer if i == 0 else None,
                    color=_color(mixer),
                )
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.set_title(task)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"curves_{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append((task, path))
    return made


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
            raise ValueError(f"{path} is not valid JSON ({err}); rerun the benchmark") from None
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
            f"{r.score:.4f}",
        ]
        for r in runs
    ]
    return Table(["run", "task", "mixer", "layers", "seed", "steps", "test metric"], rows)


# ---------------------------------------------------------------------------------------------
# command line


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="turn a directory of runs into report.md, report.html and plots",
        description=__doc__,
        epilog="examples:\n  globalconv compare --out runs/compare\n"
        "  globalconv report runs/compare\n"
        "  globalconv report runs/full --out reports/full --width 128",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs_dir", help="directory holding run directories (searched recursively)")
    p.add_argument("--out", help="output folder (default RUNS_DIR/report)")
    p.add_argument(
        "--width",
        type=positive_int,
        default=256,
        help="model width D for the cost tables (default 256)",
    )
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    root = Path(args.runs_dir)
    if not root.is_dir():
        raise ValueError(f"runs directory {root} does not exist")
    out = build_report(root, Path(args.out) if args.out else root / "report", width=args.width)
    print(f"report: {out / 'report.md'}\n        {out / 'report.html'}")
    return 0
