"""What the run directories under a directory hold, finished or not, as ``globalconv runs``
prints it."""

from __future__ import annotations

from pathlib import Path

from globalconv.core.tables import format_table
from globalconv.train.rundir import SECTIONS, RunDir, RunState, find_runs


def runs_table(root: Path) -> str:
    """The table, then one line per damaged run naming its file."""
    rows, problems = [], []
    for run in find_runs(root):
        status = run.status()
        if status.state is RunState.DAMAGED:
            problems.append(f"damaged: {status.problem}")
        summary = status.summary
        task: dict = {}
        model: dict = {}
        train: dict = {}
        if status.config is not None:  # status checked that it has these sections
            task, model, train = (status.config[k] for k in SECTIONS)
        result, metric = "-", None
        if summary is not None:
            metric = summary.metric
            value = summary.result("test")
            result = "-" if value is None else f"{value:.4f}"
        rows.append(
            [
                str(run.path.relative_to(root)) if run.path != root else ".",
                status.label,
                task.get("name", "-"),
                model.get("mixer", "-"),
                model.get("d_model", "-"),
                model.get("n_layers", "-"),
                "-" if summary is None or summary.params is None else f"{summary.params:,}",
                f"{summary.flops_per_token:,.0f}" if summary and summary.flops_per_token else "-",
                train.get("seed", "-"),
                "-"
                if summary is None or summary.train_seconds is None
                else f"{summary.train_seconds:.1f}",
                f"{metric}: {result}" if metric else "-",
            ]
        )
    header = ["run", "status", "task", "mixer", "d_model", "layers", "params", "FLOPs/token"]
    header += ["seed", "train s", "test"]
    return "\n".join([format_table(header, rows), *problems]) if rows else ""


__all__ = ["RunDir", "find_runs", "runs_table"]
