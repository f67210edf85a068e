"""``globalconv report RUNS_DIR``: the runs in a directory turned into the answer.

Reads every run directory below RUNS_DIR (a folder with ``summary.json``; ``config.json`` and
``metrics.jsonl`` beside it) and any benchmark result (``bench*.json``), and writes
``report.md``, a self-contained ``report.html`` and the PNG plots into the output folder. Every
number in its tables is read from those files; nothing is typed in, except the literature table,
whose figures are quoted with their sources.

The sections live in modules of their own: ``runs`` (reading the runs), ``tables`` (results,
verdicts, tuning, depth, the runs), ``plots``, ``cost`` (FLOPs, speed and memory) and
``learned`` (what the mixers learned); this module puts them in order.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any section imports pyplot: files only, never a window

from globalconv.analysis import circulant, literature, verdicts  # noqa: E402
from globalconv.analysis.document import (  # noqa: E402
    Bullets,
    Document,
    Heading,
    Image,
    Paragraph,
)
from globalconv.analysis.report.cost import cost_section, speed_section  # noqa: E402
from globalconv.analysis.report.learned import mixing_section  # noqa: E402
from globalconv.analysis.report.plots import (  # noqa: E402
    plot_by_depth,
    plot_by_width,
    plot_curves,
    plot_scores,
)
from globalconv.analysis.report.runs import (  # noqa: E402
    REFERENCE,
    Run,
    cell_key,
    collect_runs,
    reference_scores,
    selection_records,
)
from globalconv.analysis.report.tables import (  # noqa: E402
    answer,
    answer_and_summary,
    budget_text,
    depth_table,
    literature_table,
    results_table,
    runs_table,
    tuning_table,
)
from globalconv.core import io  # noqa: E402
from globalconv.core.io import RunFileError  # noqa: E402
from globalconv.train.rundir import RunDir  # noqa: E402


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
            f"no runs under {root}: expected folders with {RunDir.SUMMARY} (see globalconv train)"
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
    points, summary = answer_and_summary(runs, width)
    if summary:
        doc.add(Paragraph(summary))
    doc.add(Heading("The answer, point by point"), Bullets(points))
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
    against = "mean over seeds, ±1 std where n ≥ 2; the dashed line is the trivial floor."
    by_width = plot_by_width(runs, out / "by_width.png")
    if by_width is not None:
        caption = "Test metric against model width, one panel per task (as Zoology plots MQAR): "
        doc.add(Image(by_width, caption + against))
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
        by_depth = plot_by_depth(runs, out / "by_depth.png")
        if by_depth is not None:
            caption = "Test metric against the number of layers, one panel per task: "
            doc.add(Image(by_depth, caption + against))
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


__all__ = [
    "REFERENCE",
    "Run",
    "answer",
    "build_report",
    "cell_key",
    "collect_runs",
    "plot_by_width",
    "reference_scores",
]
