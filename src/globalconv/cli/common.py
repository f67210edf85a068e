"""What several commands share: the config options, --match, the executor options, the table of
finished runs and the lines naming the runs that failed. Nothing here imports torch."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from globalconv.core.errors import ConfigError
from globalconv.core.tables import format_table

if TYPE_CHECKING:
    from globalconv.train.summary import Summary

# globalconv.train.executors.EXECUTORS, named here so that parsing loads no torch (a test checks
# that the two agree)
EXECUTORS = ("local", "ray")


def add_config_options(p: argparse.ArgumentParser) -> None:
    """-c, the KEY=VALUE overrides and -q, for the commands that train from a run config."""
    p.add_argument("-c", "--config", help="YAML or JSON config file (defaults otherwise)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. model.d_model=128 train.lr=3e-4",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_match(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--match",
        choices=["params", "flops"],
        help="size each model (width; match.dimension=depth for depth) to the reference "
        "(match.reference, default attention at the configured size) by parameters or "
        "FLOPs per token at the task's length, within match.tolerance (default 5%%)",
    )


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """--executor and --ray-address, for the commands that run many trainings."""
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local (default): this machine's cores, --jobs at a time; ray: one Ray task per run "
        "(train.threads CPUs each, one GPU for train.device=cuda), as many at a time as the "
        "cluster's CPUs hold, the same run directories (pip install 'globalconv[ray]')",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster to run on (default: RAY_ADDRESS, else a local Ray instance "
        "started for the command); the run directories must be at the same path on every node",
    )


def executor_options(args: argparse.Namespace, jobs: int | None) -> dict[str, Any]:
    """``executor``, ``jobs`` and ``ray_address`` for ``protocol.run`` or ``sweep.run_sweep``,
    from --executor, --ray-address and the jobs asked for (None: the executor's default)."""
    if args.executor == "ray":
        if jobs is not None:
            raise ConfigError(
                "--jobs is for the local executor; on Ray the cluster's CPUs decide how many "
                "runs train at once (train.threads each)"
            )
        return {"executor": "ray", "jobs": 1, "ray_address": args.ray_address}
    if args.ray_address:
        raise ConfigError("--ray-address needs --executor ray")
    return {"executor": "local", "jobs": jobs or os.cpu_count() or 1, "ray_address": None}


def comma_list(text: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']; None or '' -> []."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def summaries_table(
    summaries: list[Summary], studied: list[str] | None = None, label: str | None = None
) -> str:
    """One row per finished run (its summary); ``studied``: the reference study's result
    for each row's cell; ``label``: the task as the suite names it (else the task's name)."""
    metric = summaries[0].metric

    def shown(value: float | int | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    header = ["task", "mixer", "d_model", "layers", "params", "FLOPs/token", "train s", "tokens/s"]
    header.append(f"test {metric}")
    rows = [
        [
            label or s.task,
            s.mixer,
            shown(s.d_model, ""),
            shown(s.n_layers, ""),
            shown(s.params, ","),
            shown(s.flops_per_token, ",.0f"),
            shown(s.train_seconds, ".1f"),
            shown(s.train_tokens_per_s, ",.0f"),
            shown(s.result("test", metric), ".4f"),
        ]
        for s in summaries
    ]
    if studied is not None:
        header.append("reference study")
        rows = [row + [ref] for row, ref in zip(rows, studied, strict=True)]
    return format_table(header, rows)


def print_failed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A line for each run that failed (an entry of a sweep's or a comparison's summary with an
    ``error``); returns those runs, whose number decides the exit code."""
    failed = [r for r in runs if "error" in r]
    for r in failed:
        print(f"failed: {r['name']}: {r['error']}")
    return failed
