"""Sweeps: a grid or a list of runs (mixers x tasks x seeds x learning rates ...), resumable.

A sweep file (YAML or JSON)::

    base: mnist1d.yaml            # a run config file (relative to this file), or a mapping
    grid:                          # dotted key -> values; every combination is a run
      model.mixer: [attention, global_conv]
      train.seed: [0, 1, 2]
    runs:                          # optional explicit runs, each crossed with the grid
      - {train.lr: 1.0e-3}
      - {train.lr: 3.0e-3, train.warmup_steps: 50}
    jobs: 1                        # processes in parallel (the local executor)
    out: runs/my-sweep

Each run gets a directory named after its settings (``mixer=attention,seed=0``). Running the
sweep again skips runs with a ``summary.json`` (finished), resumes runs with a checkpoint, and
starts the rest. Runs that differ only in ``train.seed`` form a group whose metrics are reported
as mean and sample standard deviation over seeds in ``sweep_summary.json``.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from globalconv import config as configuration
from globalconv.config import ConfigError, RunConfig, Strict
from globalconv.core import io, stats
from globalconv.core.settings import Problem, one_line, set_dotted
from globalconv.core.tables import format_table
from globalconv.train import executors
from globalconv.train.rundir import RunDir
from globalconv.train.summary import Summary

SUMMARY = "sweep_summary.json"
SEED_KEY = "train.seed"


class SweepConfig(Strict):
    base: str | dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    runs: list[dict[str, Any]] = Field(default_factory=list)
    jobs: int = Field(1, ge=1)
    out: str | None = None


def load_sweep(path: str | Path) -> tuple[SweepConfig, Path]:
    """A sweep file and the folder its relative paths start from."""
    path = Path(path)
    try:
        return SweepConfig.model_validate(configuration.load_file(path)), path.parent
    except ValidationError as err:
        raise ConfigError(f"sweep file {path}: {_sweep_problem(err)}") from None


def _sweep_problem(err: ValidationError) -> str:
    def phrase(problem: Problem) -> str:
        if problem.unknown:
            return f"unknown key {problem.key!r}; allowed: {', '.join(SweepConfig.model_fields)}"
        return f"{problem.key}: {problem.message}"

    return one_line(err, phrase)


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    set_dotted(data, key, value, context=f"sweep key {key!r}")


def run_name(settings: dict[str, Any]) -> str:
    """A directory name from a run's settings: last key parts unless two runs' would clash."""
    if not settings:
        return "run"
    lasts = [k.rsplit(".", 1)[-1] for k in settings]
    short = len(set(lasts)) == len(lasts)
    parts = []
    for key, value in settings.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        parts.append(f"{key.rsplit('.', 1)[-1] if short else key}={shown}")
    return ",".join(parts).replace("/", "_").replace(" ", "")


def plan(
    sweep: SweepConfig, root: Path | None = None, overrides: list[str] | None = None
) -> list[tuple[str, dict[str, Any], RunConfig]]:
    """(name, settings, config) of every run, all validated before anything trains."""
    if isinstance(sweep.base, str):
        base = configuration.load_file((root or Path()) / sweep.base)
    else:
        base = copy.deepcopy(sweep.base)
    base = configuration.apply_overrides(base, overrides or [])
    empty = [k for k, values in sweep.grid.items() if not values]
    if empty:
        raise ConfigError(f"sweep grid key(s) {', '.join(empty)} have no values")
    keys = list(sweep.grid)
    runs = []
    for explicit in sweep.runs or [{}]:
        for combo in itertools.product(*(sweep.grid[k] for k in keys)):
            settings = {**explicit, **dict(zip(keys, combo, strict=True))}
            data = copy.deepcopy(base)
            for key, value in settings.items():
                _set(data, key, value)
            name = run_name(settings)
            try:
                cfg = configuration.parse(data)
            except ConfigError as err:
                raise ConfigError(f"sweep run {name}: {err}") from None
            runs.append((name, settings, cfg))
    names = [name for name, _, _ in runs]
    if len(set(names)) != len(names):
        raise ConfigError("sweep has duplicate runs (the same settings twice); remove them")
    return runs


def status(run_dir: Path) -> str:
    """done | resume | new"""
    run = RunDir(run_dir)
    if run.finished:
        return "done"
    if run.checkpoint_path.is_file():
        return "resume"
    return "new"


def reuse(run_dir: Path, cfg: RunConfig, *, rerun: bool = False) -> str:
    """What to do with ``run_dir`` for a run requested as ``cfg``: "done" (finished with this
    config: read back), "resume" (partial, this config), "new", or "rerun" (made with another
    config, and ``rerun``: trained again from scratch). A run made with another config is
    otherwise a ``ConfigError`` naming the keys that differ: it is never reused silently."""
    from globalconv.train.loop import config_differences

    state = status(run_dir)
    if state == "new":
        return state
    # like with like: the request saved beside the run, before matching resized it (runs
    # from before request.json have only the resolved config.json)
    run = RunDir(run_dir)
    saved_path = run.request_path
    if not saved_path.is_file():
        saved_path = run.config_path
    if not saved_path.is_file():
        return state  # a checkpoint alone: train's own check compares the checkpoint's config
    where = f"in {saved_path.name}"
    differences = config_differences(io.read_json(saved_path), cfg.model_dump(mode="json"), where)
    if not differences:
        return state
    if rerun:
        return "rerun"
    kind = "finished" if state == "done" else "partial"
    raise ConfigError(
        f"{run_dir} holds a {kind} run made with another config ({'; '.join(differences)}); "
        "pass --rerun to train it again as requested, or choose another --out"
    )


def check_reuse(plans: list[tuple[Path, RunConfig]], *, rerun: bool) -> dict[Path, str]:
    """``reuse`` for every planned run at once, so that conflicts are refused together and
    before anything trains."""
    states, problems = {}, []
    for run_dir, cfg in plans:
        try:
            states[run_dir] = reuse(run_dir, cfg, rerun=rerun)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        more = f" (and {len(problems) - 1} more run(s) like it)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)
    return states


def run_sweep(
    runs: list[tuple[str, dict[str, Any], RunConfig]],
    out: str | Path,
    *,
    jobs: int = 1,
    progress: bool = True,
    echo=print,
    rerun: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run (or skip, or resume) every planned run; write and return the sweep summary (each
    run's entry with its ``Summary``; the file holds their JSON). A run already in ``out`` made
    with another config is refused (``reuse``), or with ``rerun`` trained again. ``executor``:
    "local" (``jobs`` at a time) or "ray" (``executors.make``)."""
    out = Path(out)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    states = check_reuse([(out / name, cfg) for name, _, cfg in runs], rerun=rerun)
    for name, _, cfg in runs:
        state = states[out / name]
        if state == "done":
            echo(f"[skip] {name}: finished")
            results[name] = {"status": "skipped", "summary": RunDir(out / name).read_summary()}
        else:
            todo.append((name, cfg, state))
    runner = executors.make(executor, jobs=jobs, progress=progress, ray_address=ray_address)
    with runner:
        inline = isinstance(runner, executors.Inline)  # it trains at submission
        futures = {}
        for name, cfg, state in todo:
            if inline:
                echo(f"[{state if state != 'new' else 'run'}] {name}")
            futures[name] = runner.submit(cfg, out / name, state)
        for name, future in futures.items():
            results[name] = _guard(future.result)
            if not inline:
                echo(f"[{results[name]['status']}] {name}")
    entries = []
    for name, settings, _ in runs:
        entries.append({"name": name, "settings": settings, **results[name]})
    summary = {"runs": entries, "groups": aggregate(entries)}
    io.write_json(out / SUMMARY, {**summary, "runs": entries_json(entries)}, checksum=True)
    return summary


def entries_json(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of runs as a summary file holds them: each run's summary as its JSON."""
    return [{**e, "summary": e["summary"].to_json()} if "summary" in e else e for e in entries]


def _guard(fn) -> dict[str, Any]:
    """A failed run is reported and the sweep goes on; an interrupt stops the sweep."""
    try:
        return {"status": "done", "summary": fn()}
    except Exception as err:  # noqa: BLE001  (reported in the sweep summary and exit code)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


AGGREGATED = ("test_", "valid_", "best_valid_", "final_train_loss", "train_seconds")


def aggregate(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs that differ only in the seed; mean and sample std (n-1) of their metrics."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if "summary" not in entry:
            continue
        rest = {k: v for k, v in entry["settings"].items() if k != SEED_KEY}
        groups.setdefault(run_name(rest), []).append(entry)
    out = []
    for label, members in groups.items():
        summaries: list[Summary] = [m["summary"] for m in members]
        numbers = [s.numbers() for s in summaries]
        first = summaries[0]
        keys = [k for k in numbers[0] if k.startswith(AGGREGATED) and not k.endswith("_step")]
        out.append(
            {
                "group": label,
                "n": len(summaries),
                "seeds": [s.seed for s in summaries],
                "runs": [m["name"] for m in members],
                "task": first.task,
                "mixer": first.mixer,
                "metric": first.metric,
                "params": first.params,
                "flops_per_token": first.flops_per_token,
                "metrics": {k: mean_std([n[k] for n in numbers if k in n]) for k in keys},
            }
        )
    return out


def mean_std(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (n-1 denominator; None for a single value), as a
    summary's groups record them."""
    mean, std = stats.mean_std(values)
    return {"mean": mean, "std": std, "n": len(values)}


def groups_table(groups: list[dict[str, Any]]) -> str:
    rows = []
    for g in groups:
        key = "test_accuracy" if g["metric"] == "accuracy" else "test_bits_per_token"
        m = g["metrics"].get(key)
        shown = "-" if m is None else f"{m['mean']:.4f}"
        if m is not None and m["std"] is not None:
            shown += f" ± {m['std']:.4f}"
        rows.append(
            [
                g["group"],
                g["n"],
                g["task"],
                g["mixer"],
                f"{g['params']:,}",
                f"test {g['metric']}: {shown}",
            ]
        )
    return format_table(["group", "seeds", "task", "mixer", "params", "result (mean ± std)"], rows)


def parse_values(text: str) -> list[Any]:
    """'a,b,3e-4' -> ['a', 'b', 0.0003] (each value read as YAML)."""

    return [configuration.parse_yaml(v) for v in text.split(",") if v.strip()]


__all__ = ["SweepConfig", "aggregate", "load_sweep", "mean_std", "plan", "run_sweep"]
