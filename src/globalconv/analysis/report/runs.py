"""The runs a report reads: each finished run directory under a folder, with its summary,
config, learning curves and its place in a protocol cell; grouping, and the cell a run
belongs to across studies."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globalconv.analysis import verdicts
from globalconv.core import io
from globalconv.core.io import RunFileError
from globalconv.core.stats import mean_std
from globalconv.train.rundir import SELECTION, RunDir, find_runs
from globalconv.train.summary import Summary

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
    summary: Summary
    config: dict[str, Any]  # as saved: configs of older versions stay readable
    curve: list[tuple[int, float]]  # (step, training loss)
    valid_curve: list[tuple[int, float]]  # (step, validation metric)
    cell: str | None = None  # the protocol cell it belongs to (None: a plain run)
    role: str = "result"  # result | tuning (a grid point that was not chosen)

    @property
    def files(self) -> RunDir:
        return RunDir(self.path)

    @property
    def task(self) -> str:
        return self.summary.task

    @property
    def label(self) -> str:
        """The task as the comparison named it (a suite's label), else the task's name."""
        return self.cell.split("/", 1)[0] if self.cell else self.task

    @property
    def mixer(self) -> str:
        return self.summary.mixer

    @property
    def width(self) -> int:
        """The reference's width the model was sized to (its own width when not matched)."""
        model, match = self.config.get("model", {}), self.config.get("match", {})
        return int(match.get("reference_d_model") or model.get("d_model", 0))

    @property
    def layers(self) -> int:
        """The reference's depth the model was sized to (its own depth when not matched)."""
        model, match = self.config.get("model", {}), self.config.get("match", {})
        return int(match.get("reference_n_layers") or model.get("n_layers", 0))

    @property
    def key(self) -> tuple:
        return cell_key(self.label, self.config)

    @property
    def metric(self) -> str:
        return self.summary.metric

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    @property
    def floor(self) -> float | None:
        baseline = self.summary.baseline
        return None if baseline is None else baseline.value

    @property
    def lr(self) -> float | None:
        return self.config.get("train", {}).get("lr")

    @property
    def improving(self) -> bool | None:
        return verdicts.still_improving(self.valid_curve, self.summary.trained_steps, self.metric)

    @property
    def score(self) -> float:
        value = self.summary.result("test")
        if value is None:
            raise RunFileError(
                f"{self.files.summary_path} has no 'test_{self.metric}'; rerun or remove the run"
            )
        return value


def collect_runs(root: Path) -> list[Run]:
    """Every finished run directory below ``root`` (those with a summary), sorted by path.

    Where a protocol's ``selection.json`` sits above a run, the run belongs to that cell: its
    role is "result" if it is one of the cell's final (chosen) runs, else "tuning".
    """
    root = Path(root)
    finals: dict[Path, str] = {}
    cells: dict[Path, str] = {}
    for path in sorted(root.rglob(SELECTION)):
        record = io.read_json(path)
        for name in record.get("final_runs", []):
            finals[path.parent / name] = record["cell"]
        for point in record.get("points", []):
            cells[path.parent / point["run"]] = record["cell"]
    runs = []
    for run in find_runs(root, finished=True):
        folder = run.path
        summary = run.read_summary()  # a damaged file is an error naming that file
        config = run.read_config() if run.config_path.is_file() else {}
        metric = summary.metric
        records = run.read_metrics()
        curve = [(int(r["step"]), float(r["loss"])) for r in records if "loss" in r]
        valid = [(int(r["step"]), float(r[f"valid_{metric}"])) for r in records
                 if f"valid_{metric}" in r]  # fmt: skip
        cell = finals.get(folder) or cells.get(folder)
        role = "tuning" if cell and folder not in finals else "result"
        parent = folder.parent
        if cell is None and (parent / SELECTION).is_file():
            cell, role = io.read_json(parent / SELECTION)["cell"], "tuning"
        runs.append(Run(folder, summary, config, curve, valid, cell, role))
    return runs


def selection_records(root: Path) -> list[dict[str, Any]]:
    return [io.read_json(path) for path in sorted(Path(root).rglob(SELECTION))]


def group_by(runs: list[Run], *keys: str) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[tuple(getattr(run, k) for k in keys)].append(run)
    return dict(sorted(groups.items()))


def format_score(mean: float, std: float | None, n: int, percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.2f}"
    return text + (f" ± {std * scale:.2f}" if n > 1 else "") + f" (n={n})"


def cell_key(label: str, config: dict[str, Any]) -> tuple:
    """What makes runs of two comparisons the same cell: the task as labelled and configured,
    the mixer, the reference depth and width and the budget; not the seed or a tuned value."""
    model, train, match = (config.get(k, {}) for k in ("model", "train", "match"))
    task = config.get("task", {})
    setting = {
        "task": [task.get("name"), task.get("params"), task.get("valid_fraction")],
        "budget": [train.get("steps"), train.get("batch_size"), train.get("warmup_steps")],
        "match": match.get("by"),
    }
    width = int(match.get("reference_d_model") or model.get("d_model", 0))
    fingerprint = json.dumps(setting, sort_keys=True, default=str)
    layers = int(match.get("reference_n_layers") or model.get("n_layers", 0))
    return (label, model.get("mixer"), layers, width, fingerprint)


def reference_scores(root: Path) -> dict[tuple, str]:
    """``cell_key`` -> the cell's test result in the studies under ``root``."""
    if not Path(root).is_dir():
        return {}
    found = {}
    results = [r for r in collect_runs(root) if r.role == "result"]
    for (key,), group in group_by(results, "key").items():
        mean, std = mean_std([r.score for r in group])
        study = group[0].path.relative_to(root).parts[0]
        found[key] = f"{format_score(mean, std, len(group), group[0].higher_is_better)} [{study}]"
    return found
