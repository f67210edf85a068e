"""What the run directories under a directory hold, finished or not, as ``globalconv runs``
prints it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from globalconv.core import io
from globalconv.core.tables import format_table
from globalconv.train import checkpoint, records


def find_runs(root: Path) -> list[Path]:
    """Run directories (holding a config.json) under root, root included, sorted."""
    return sorted(p.parent for p in root.rglob("config.json"))


RUN_FILES = ("config.json", "request.json", "env.json", "summary.json", "model.safetensors")


def describe(run_dir: Path) -> dict[str, Any]:
    """What a run directory holds: its summary when finished, else its config and progress.
    A damaged file gives status ``damaged`` and ``problem``, the error naming it."""
    try:
        return _describe(run_dir)
    except (io.RunFileError, KeyError, TypeError) as err:
        problem = str(err) if isinstance(err, io.RunFileError) else f"{run_dir}: unexpected {err}"
        row = {"task": "-", "mixer": "-", "d_model": "-", "n_layers": "-", "seed": "-"}
        return {**row, "status": "damaged", "problem": problem}


def _describe(run_dir: Path) -> dict[str, Any]:
    for name in RUN_FILES:  # every file checked, so that a damaged one is never listed as done
        if (run_dir / name).is_file():
            io.read_bytes(run_dir / name)
    records.read_metrics(run_dir / records.METRICS)
    config = io.read_json(run_dir / "config.json")
    row: dict[str, Any] = {
        "task": config["task"]["name"],
        "mixer": config["model"]["mixer"],
        "d_model": config["model"]["d_model"],
        "n_layers": config["model"]["n_layers"],
        "seed": config["train"]["seed"],
        "steps": config["train"]["steps"],
    }
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        if not (run_dir / "model.safetensors").is_file():
            raise io.RunFileError(f"{run_dir / 'model.safetensors'} is missing from a finished run")
        summary = io.read_json(summary_path)
        if (run_dir / checkpoint.FILENAME).is_file():
            try:
                checkpoint.read_meta(run_dir / checkpoint.FILENAME)
            except checkpoint.CheckpointError as err:
                raise io.RunFileError(str(err)) from None
        row.update(summary)
        row["status"] = "early stop" if summary.get("stopped_early") else "done"
        return row
    ckpt = run_dir / checkpoint.FILENAME
    if not ckpt.is_file():
        row["status"] = "no checkpoint"
        return row
    try:
        meta = checkpoint.read_meta(ckpt)
        row["status"] = f"step {meta['step']}/{meta['steps']}"
    except checkpoint.CheckpointError:
        row["status"] = "bad checkpoint"
    return row


def runs_table(root: Path) -> str:
    """The table, then one line per damaged run naming its file."""
    rows, problems = [], []
    for run_dir in find_runs(root):
        r = describe(run_dir)
        if "problem" in r:
            problems.append(f"damaged: {r['problem']}")
        metric = r.get("metric")
        key = {"accuracy": "test_accuracy", "bits_per_token": "test_bits_per_token"}.get(metric)
        result = f"{r[key]:.4f}" if key and key in r else "-"
        rows.append(
            [
                str(run_dir.relative_to(root)) if run_dir != root else ".",
                r["status"],
                r["task"],
                r["mixer"],
                r["d_model"],
                r["n_layers"],
                f"{r['params']:,}" if "params" in r else "-",
                f"{r['flops_per_token']:,.0f}" if r.get("flops_per_token") else "-",
                r["seed"],
                f"{r['train_seconds']:.1f}" if "train_seconds" in r else "-",
                f"{metric}: {result}" if metric else "-",
            ]
        )
    header = ["run", "status", "task", "mixer", "d_model", "layers", "params", "FLOPs/token"]
    header += ["seed", "train s", "test"]
    return "\n".join([format_table(header, rows), *problems]) if rows else ""


__all__ = ["describe", "find_runs", "runs_table"]
