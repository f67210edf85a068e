"""The report's cost and speed sections: analytic FLOPs per mixer and length, and the measured
times and memory of benchmark files."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from globalconv import mixers
from globalconv.analysis import flops as flop_counts
from globalconv.analysis.document import Bullets, Image, Paragraph, Table
from globalconv.analysis.report.plots import color
from globalconv.analysis.report.runs import REFERENCE, Run
from globalconv.core.io import RunFileError


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
        ax.loglog(lengths, per_token, marker="o", ms=3, label=name, color=color(name))
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
                color=color(name),
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
            "`global_conv` on (B, L, D) input through the `fft` backend (torch.fft) and, where "
            "it was measured, the `native` one (the compiled kernel), against the FFT floor, "
            "one bare rfft+irfft pair over a contiguous (B, D, N) tensor, N the mode's "
            "transform length; and the `global_conv` mixer (backend auto) against the "
            "`attention` mixer at the same size."
        )
    ]
    ms = lambda seconds: "-" if seconds is None else f"{1e3 * seconds:.3g}"  # noqa: E731
    over = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"  # noqa: E731
    if table:
        header = ["mode", "L", "fft ms", "floor ms", "fft/floor", "native/floor", "mixer ms",
                  "attention ms", "attention/mixer"]  # fmt: skip
        rows = [
            [r["mode"], str(r["L"]), ms(r["op_s"]), ms(r["floor_s"]), over(r["op_s"], r["floor_s"]),
             over(r.get("native_s"), r["floor_s"]), ms(r.get("mixer_s")),
             ms(r.get("attention_s")), over(r.get("attention_s"), r.get("mixer_s"))]
            for r in table
        ]  # fmt: skip
        blocks.append(Table(header, rows))
    if breakdown:
        groups = ("transforms", "layout", "products", "other")
        blocks.append(
            Paragraph(
                "Where the `fft` backend's time goes (torch.profiler self time per aten "
                "operator), in units of the floor: transforms (rfft/irfft), layout changes "
                "between (B, L, D) and (B, D, N), spectral products, and the rest."
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
