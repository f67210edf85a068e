"""``globalconv sweep``: run a grid or a list of run configs, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from globalconv.arguments import positive_int
from globalconv.cli.common import add_executor_options, executor_options, print_failed
from globalconv.core.errors import ConfigError

EXAMPLES = """examples:
  globalconv sweep -s configs/sweep_mnist1d.yaml
  globalconv sweep -s configs/sweep_mnist1d.yaml --jobs 2 train.steps=300
  globalconv sweep -c configs/mnist1d.yaml --grid model.mixer=attention,global_conv \\
      --grid train.lr=1e-3,3e-3 --seeds 0,1,2 --out runs/lr-sweep
  globalconv sweep -s configs/sweep_mnist1d.yaml --dry-run      # list runs and their status
  globalconv sweep -s configs/sweep_mnist1d.yaml --executor ray  # on RAY_ADDRESS or a local Ray

A sweep is resumable: run the same command again and finished runs (summary.json) are skipped,
interrupted ones resume from their checkpoint. Results: OUT/sweep_summary.json and the table
printed at the end (mean ± sample std over seeds); `globalconv runs OUT` lists every run.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid or list of configs (mixers x tasks x seeds x lrs), resumable",
        description="Run every combination of a grid (and/or a list of runs) of configs, "
        "sequentially or in parallel processes, skipping finished runs.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-s", "--sweep", help="sweep file (YAML/JSON with base, grid, runs, jobs, out)")
    p.add_argument("-c", "--config", help="base run config (instead of the sweep file's base)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="add a grid axis, e.g. model.mixer=attention,global_conv (repeatable)",
    )
    p.add_argument("--seeds", help="comma-separated seeds, a grid axis on train.seed")
    p.add_argument(
        "--jobs",
        type=positive_int,
        help="processes in parallel, local executor (default: the file's, or 1)",
    )
    add_executor_options(p)
    p.add_argument("--out", help="sweep directory (default: the file's out, or runs/sweep)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status only")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="train again the runs already in --out that were made with another config "
        "(without it they are an error naming what differs)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the base config"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.train import sweep

    config, root = sweep.load_sweep(args.sweep) if args.sweep else (sweep.SweepConfig(), Path())
    if args.config:
        config = config.model_copy(update={"base": str(Path(args.config).resolve())})
    grid = dict(config.grid)
    for item in args.grid:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--grid {item!r} must look like key.path=v1,v2")
        grid[key] = sweep.parse_values(values)
    if args.seeds:
        grid[sweep.SEED_KEY] = sweep.parse_values(args.seeds)
    config = config.model_copy(update={"grid": grid})
    running = executor_options(
        args, args.jobs if args.executor == "ray" else args.jobs or config.jobs
    )
    out = Path(args.out or config.out or "runs/sweep")
    runs = sweep.plan(config, root, args.overrides)
    if args.dry_run:
        for name, _, _ in runs:
            print(f"{sweep.status(out / name):>6}  {out / name}")
        return 0
    summary = sweep.run_sweep(runs, out, progress=not args.quiet, rerun=args.rerun, **running)
    print(sweep.groups_table(summary["groups"]))
    failed = print_failed(summary["runs"])
    print(f"sweep directory: {out} ({len(runs)} runs, {len(failed)} failed)")
    return 1 if failed else 0
