"""The comparison protocol: tune on validation, select, then train every seed.

For each cell of a comparison (a task, a mixer and a depth):

1. **tuning**: one run per point of the cell's grid (e.g. ``train.lr`` in {3e-4, 1e-3, 3e-3}),
   at the tuning seed;
2. **selection**: the point with the best *validation* score (ties: the lower validation
   loss). ``select`` is handed validation metrics only, so test never takes part;
3. **seeds**: the chosen point trained once per requested seed. The tuning seed's run at the
   chosen point is the tuning run itself (same config and seed: the same numbers), so it is
   not trained twice.

Where the choice lies at the edge of a numeric axis (the largest or smallest value tried) and
the cell has ``widen`` values beyond that edge, the nearest one is added to the grid and tuned
before selecting again, until the choice is inside the grid or the values run out: a best
learning rate at the largest one tried says only that the grid stopped too early.

Only the seed runs of the chosen point produce the test numbers a report shows. Each cell
writes ``OUT/<cell>/selection.json``: the grid (widened), every point's validation score, the
choice, the values widening added, and the axes where the choice still lies at the grid's edge
(a sign the grid should be widened further).

Runs go to ``OUT/<task>/<mixer>-l<layers>/<point>-s<seed>``. Finished runs are read back, not
retrained, and partial ones resume, so a comparison can be stopped and rerun at will. With
``jobs > 1`` runs train in worker processes, with ``executor="ray"`` as Ray tasks
(``train.executors``); a cell's seed runs are started before later cells' tuning runs, so cells
finish one after another and their results can be kept as they come.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from globalconv import config as configuration
from globalconv.config import ConfigError, RunConfig
from globalconv.core import io
from globalconv.train import executors, sweep
from globalconv.train.rundir import SELECTION, RunDir
from globalconv.train.summary import Summary


@dataclass(frozen=True)
class Cell:
    """One (task, mixer, depth) of a comparison: its grid, seeds and the config of each run.

    base: the raw config (a dict) with every override but the grid's and the seed.
    grid: dotted key -> values tuned on validation; every combination is a point.
    """

    name: str  # "<task label>/<mixer>-l<layers>": the folder of the cell's runs
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    tune_seed: int = 0
    labels: dict[str, Any] = field(default_factory=dict)  # task label, mixer, layers
    # settings in ``base`` chosen by another study's tuning, not tuned here, and where from
    fixed: dict[str, Any] = field(default_factory=dict)
    fixed_from: str = ""
    # dotted key -> values to try beyond the grid when the choice lies at its edge
    widen: dict[str, list[Any]] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        combos: list[tuple] = [()]
        for key in keys:
            combos = [c + (v,) for c in combos for v in self.grid[key]]
        return [dict(zip(keys, combo, strict=True)) for combo in combos]

    def run_name(self, point: dict[str, Any], seed: int) -> str:
        prefix = sweep.run_name(point) + "-" if point else ""
        return f"{self.name}/{prefix}s{seed}"

    def config(self, point: dict[str, Any], seed: int) -> RunConfig:
        data = copy.deepcopy(self.base)
        overrides = [f"{k}={json.dumps(v)}" for k, v in point.items()] + [f"train.seed={seed}"]
        try:
            return configuration.parse(configuration.apply_overrides(data, overrides))
        except ConfigError as err:
            raise ConfigError(f"{self.run_name(point, seed)}: {err}") from None

    def validate(self) -> None:
        """Every run the cell can ask for is a valid config (checked before anything trains)."""
        empty = [k for k, values in self.grid.items() if not values]
        if empty:
            raise ConfigError(f"{self.name}: grid key(s) {', '.join(empty)} have no values")
        for point in self.points():
            for seed in {self.tune_seed, *self.seeds}:
                self.config(point, seed)
        for key, values in self.widen.items():
            if key not in self.grid:
                raise ConfigError(f"{self.name}: widen key {key} is not a grid axis")
            if not all(_number(v) for v in [*values, *self.grid[key]]):
                raise ConfigError(f"{self.name}: widen key {key} needs numbers in its grid and "
                                  "its widening values")  # fmt: skip
        for point in self.widening_points():  # every run widening could ask for is valid too
            for seed in {self.tune_seed, *self.seeds}:
                self.config(point, seed)

    def widening_points(self) -> list[dict[str, Any]]:
        """Every grid point widening could add: each widening value with every value of the
        other axes."""
        points = []
        for key, values in self.widen.items():
            others = {k: v for k, v in self.grid.items() if k != key}
            for value in [v for v in values if v not in self.grid[key]]:
                points += Cell(self.name, self.base, {**others, key: [value]}).points()
        return points

    def widened(self, chosen: dict[str, Any], edges: list[str]) -> Cell | None:
        """This cell with the grid grown by the nearest ``widen`` value beyond each axis in
        ``edges``, the axes whose edge the chosen point lies on (see ``_select_cell``); None
        if none can grow."""
        grid = dict(self.grid)
        for key in edges:
            values = self.grid[key]
            up = chosen[key] > min(values)  # at the top edge, else at the bottom one
            beyond = [v for v in self.widen.get(key, [])
                      if (v > max(values) if up else v < min(values))]  # fmt: skip
            if beyond:
                grid[key] = sorted([*values, min(beyond) if up else max(beyond)])
        return None if grid == self.grid else dataclasses.replace(self, grid=grid)


# ---------------------------------------------------------------------------------------------
# selection: validation metrics only


def validation_scores(summary: Summary) -> dict[str, float]:
    """The validation metrics of a run summary, and nothing else."""
    return summary.results("valid")


def select(points: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The point with the best validation ``metric`` (ties: lower validation loss).

    points: [{"settings": {...}, "valid": {"valid_accuracy": ..., "valid_loss": ...}}, ...];
    a point whose run failed has no "valid" and is never chosen. None if every point failed.
    """
    higher = metric == "accuracy"
    key = f"valid_{metric}"
    scored = [p for p in points if _number((p.get("valid") or {}).get(key))]
    if not scored:
        return None

    def rank(p: dict[str, Any]) -> tuple[float, float]:
        value, loss = p["valid"][key], p["valid"].get("valid_loss", math.inf)
        return (-value if higher else value, loss)

    return min(scored, key=rank)


def at_edge(grid: dict[str, list[Any]], chosen: dict[str, Any]) -> list[str]:
    """The numeric grid axes on which the chosen value is the smallest or largest tried."""
    edges = []
    for key, values in grid.items():
        numbers = [v for v in values if _number(v)]
        if len(numbers) >= 2 and len(numbers) == len(values):
            if chosen[key] in (min(numbers), max(numbers)):
                edges.append(key)
    return edges


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class _Job:
    cell: Cell
    point: dict[str, Any]
    seed: int

    @property
    def name(self) -> str:
        return self.cell.run_name(self.point, self.seed)


def run(
    cells: list[Cell],
    out: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    echo=print,
    rerun: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Tune, select and train every seed of every cell.

    executor: "local" (``jobs`` runs at once: in this process, or in worker processes) or
    "ray" (one Ray task per run, at ``ray_address``, ``RAY_ADDRESS`` or on a local instance).

    A run already in ``out`` is read back only if it was made with the config requested now;
    otherwise it is an error naming what differs (before anything trains, for the tuning runs),
    or with ``rerun`` it is trained again.

    Returns {"runs": the seed runs (each with its ``Summary``), "groups": their mean and std,
    "cells": the selection records, "failed": seed runs that failed and cells where every grid
    point failed}; ``OUT/protocol.json`` holds it as JSON.
    """
    out = Path(out)
    for cell in cells:
        cell.validate()
    results: dict[str, dict[str, Any]] = {}
    tuning = {cell.name: [_Job(cell, p, cell.tune_seed) for p in cell.points()] for cell in cells}
    records: dict[str, dict[str, Any]] = {}
    queue: list[_Job] = [job for cell in cells for job in tuning[cell.name]]
    # every tuning run, and every one widening could add, checked against the run tree at once
    planned = queue + [_Job(c, p, c.tune_seed) for c in cells for p in c.widening_points()]
    sweep.check_reuse([(out / j.name, j.cell.config(j.point, j.seed)) for j in planned],
                      rerun=rerun)  # fmt: skip
    running: dict[Future, _Job] = {}
    runner = executors.make(executor, jobs=jobs, progress=progress, ray_address=ray_address)

    current = {cell.name: cell for cell in cells}  # each cell as widening left it
    start = {cell.name: cell.grid for cell in cells}  # and as it was asked for

    def finished(job: _Job, result: dict[str, Any]) -> None:
        results[job.name] = result
        cell = current[job.cell.name]
        if cell.name in records or any(j.name not in results for j in tuning[cell.name]):
            return
        record = _select_cell(cell, tuning[cell.name], results)
        # a run that failed for another reason than divergence stops the widening: its
        # cause (a crash, a refused config) is for the user to see, not to step over
        failed = any("error" in p and not _diverged(p) for p in record["points"])
        wider = None
        if record["chosen"] is not None and not failed:
            wider = cell.widened(record["chosen"], record["at_edge"])
        if wider is not None:
            current[cell.name] = wider
            known = {j.name for j in tuning[cell.name]}
            new = [_Job(wider, p, wider.tune_seed) for p in wider.points()]
            new = [j for j in new if j.name not in known]
            tuning[cell.name] += new
            queue[0:0] = new  # finish this cell before starting others
            return
        added = {k: [v for v in vs if v not in start[cell.name][k]] for k, vs in cell.grid.items()}
        record = {**record, "widened": {k: v for k, v in added.items() if v}}
        records[cell.name] = record
        io.write_json(out / cell.name / SELECTION, record, checksum=True)
        if record["chosen"] is not None:
            seeds = [_Job(cell, record["chosen"], s) for s in cell.seeds]
            # a finished cell before a new one: insert ahead of every tuning job
            first_tuning = next((i for i, j in enumerate(queue) if _is_tuning(j)), len(queue))
            queue[first_tuning:first_tuning] = [j for j in seeds if j.name not in results]

    with runner:
        while queue or running:
            while queue and len(running) < runner.slots:
                job = queue.pop(0)
                if job.name in results:
                    continue
                run_dir = out / job.name
                cfg = job.cell.config(job.point, job.seed)
                try:
                    state = sweep.reuse(run_dir, cfg, rerun=rerun)
                except ConfigError as err:  # a seed run, known only once its cell is tuned
                    echo(f"[failed] {job.name}: {err}")
                    finished(job, {"status": "failed", "error": f"ConfigError: {err}"})
                    continue
                if state == "done":
                    echo(f"[skip] {job.name}: finished")
                    summary = RunDir(run_dir).read_summary()
                    finished(job, {"status": "skipped", "summary": summary})
                    continue
                echo(f"[{state if state != 'new' else 'run'}] {job.name}")
                running[runner.submit(cfg, run_dir, state)] = job
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                result = sweep._guard(future.result)
                if result["status"] == "failed":
                    echo(f"[failed] {job.name}: {result['error']}")
                elif not isinstance(runner, executors.Inline):  # inline runs show a bar
                    echo(f"[done] {job.name}")
                finished(job, result)
    return _summary(list(current.values()), records, results, out)


def _is_tuning(job: _Job) -> bool:
    return job.seed == job.cell.tune_seed


def _select_cell(cell: Cell, jobs: list[_Job], results: dict[str, dict[str, Any]]) -> dict:
    points = []
    metric = None
    for job in jobs:
        result = results[job.name]
        entry: dict[str, Any] = {"settings": job.point, "run": job.name.rsplit("/", 1)[-1]}
        if "summary" in result:
            metric = metric or result["summary"].metric
            entry["valid"] = validation_scores(result["summary"])
        else:
            entry["error"] = result.get("error")
        points.append(entry)
    chosen = select(points, metric) if metric else None
    record = {
        "cell": cell.name,
        **cell.labels,
        "metric": metric,
        "selected_by": f"valid_{metric}" if metric else None,
        "grid": cell.grid,
        "tune_seed": cell.tune_seed,
        "seeds": list(cell.seeds),
        "points": points,
        **({"fixed": cell.fixed, "fixed_from": cell.fixed_from} if cell.fixed else {}),
        "chosen": None if chosen is None else chosen["settings"],
        "at_edge": []
        if chosen is None
        else at_edge(_bounding(cell.grid, points), chosen["settings"]),
        "final_runs": []
        if chosen is None
        else [cell.run_name(chosen["settings"], s).rsplit("/", 1)[-1] for s in cell.seeds],
    }
    if chosen is None:
        record["error"] = "every grid point failed or has no validation score"
    return record


def _bounding(grid: dict[str, list[Any]], points: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The grid's values that bound the search: those of points that were scored or diverged
    (a rate that diverged is too high). A run that failed otherwise (a crash, a config
    refused) says nothing about its value, so a choice beside it is still at the edge."""
    told = [p["settings"] for p in points if "valid" in p or _diverged(p)]
    return {key: [v for v in values if any(t.get(key) == v for t in told)]
            for key, values in grid.items()}  # fmt: skip


def _diverged(point: dict[str, Any]) -> bool:
    return str(point.get("error") or "").startswith("DivergedError")


def _summary(cells, records, results, out: Path) -> dict[str, Any]:
    entries = []
    for cell in cells:
        record = records.get(cell.name)
        if record is None or record["chosen"] is None:
            continue
        for seed in cell.seeds:
            name = cell.run_name(record["chosen"], seed)
            settings = {**cell.labels, **record["chosen"], sweep.SEED_KEY: seed}
            entries.append({"name": name, "settings": settings, **results[name]})
    # A tuning point that diverged is a finding recorded in its cell, not a failure; a seed run
    # that fails, or a cell with no usable point, is.
    failed = [{"name": e["name"], "error": e["error"]} for e in entries if "error" in e]
    failed += [
        {"name": c.name, "error": records[c.name]["error"]}
        for c in cells
        if c.name in records and records[c.name]["chosen"] is None
    ]
    summary = {
        "runs": entries,
        "groups": sweep.aggregate(entries),
        "cells": [records[c.name] for c in cells if c.name in records],
        "failed": failed,
    }
    io.write_json(out / "protocol.json", {**summary, "runs": sweep.entries_json(entries)},
                  checksum=True)  # fmt: skip
    return summary


__all__ = ["SELECTION", "Cell", "at_edge", "run", "select", "validation_scores"]
