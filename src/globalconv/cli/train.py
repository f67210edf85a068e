"""``globalconv train``: train one model (or one per seed) and write its run directory."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from globalconv import config as configuration
from globalconv.cli.common import (
    add_config_options,
    add_match,
    print_failed,
    summaries_table,
)

if TYPE_CHECKING:
    from globalconv.train.summary import Summary

EXAMPLES = """examples:
  globalconv train model.mixer=global_conv train.steps=500
  globalconv train -c configs/mnist1d.yaml model.d_model=128 --out runs/wide
  globalconv train -c configs/train_full.yaml --out runs/full       # every option, commented
  globalconv train -c configs/mnist1d.yaml --match flops --out runs/gc-flops
  globalconv train -c configs/mnist1d.yaml --seeds 0,1,2 --out runs/seeds
  globalconv train --resume runs/full                  # continue from its checkpoint
  torchrun --nproc_per_node=2 -m globalconv train -c configs/mnist1d.yaml --out runs/ddp
  globalconv compare --mixers attention,global_conv --steps 1500 --match params

Config keys: see configs/train_full.yaml and the README's Configuration section. Ctrl-C saves
a checkpoint and exits (code 130); --resume continues it to the same final numbers.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one model and write a run directory",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p)
    p.add_argument("--out", help="run directory (default runs/<task>-<mixer>-s<seed>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its checkpoint, with its config.json (plus overrides)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument(
        "--seeds", help="comma-separated seeds: one run each under --out, mean ± std reported"
    )
    add_match(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.core import io
    from globalconv.train import train
    from globalconv.train.rundir import RunDir

    if args.resume:
        if args.config or args.seeds or args.overwrite:
            raise configuration.ConfigError(
                "--resume takes the run's own config.json; drop -c/--seeds/--overwrite"
            )
        if args.out and Path(args.out) != Path(args.resume):
            raise configuration.ConfigError(
                f"--resume continues {args.resume} in place; drop --out {args.out} "
                f"(or copy the run directory to {args.out} and resume that)"
            )
        out = Path(args.resume)
        run = RunDir(out)
        if not run.config_path.is_file():
            raise io.MissingRunFileError(f"{out} has no {RunDir.CONFIG}: not a run directory")
        run.read_config()  # damaged: an error naming it
        cfg = _load(str(run.config_path), args.match, args.overrides)
        summary = train(cfg, out, progress=not args.quiet, resume=True)
        _report(summary, out)
        return 0
    cfg = _load(args.config, args.match, args.overrides)
    if args.seeds:
        return _train_seeds(args, cfg)
    out = Path(args.out) if args.out else Path("runs") / _run_name(cfg)
    summary = train(cfg, out, progress=not args.quiet, overwrite=args.overwrite)
    _report(summary, out)
    return 0


def _load(path: str | None, match: str | None, overrides: list[str]) -> configuration.RunConfig:
    data = configuration.load_file(path) if path else {}
    by = [f"match.by={match}"] if match else []
    return configuration.parse(configuration.apply_overrides(data, by + overrides))


def _report(summary: Summary, out: Path) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        print(summaries_table([summary]))
        print(f"run directory: {out}")


def _train_seeds(args: argparse.Namespace, cfg: configuration.RunConfig) -> int:
    from globalconv.train import sweep

    out = Path(args.out) if args.out else Path("runs") / _run_name(cfg)
    seeds = sweep.parse_values(args.seeds)
    base = cfg.model_dump(mode="json")
    runs = sweep.plan(sweep.SweepConfig(base=base, grid={sweep.SEED_KEY: seeds}))
    summary = sweep.run_sweep(runs, out, progress=not args.quiet, rerun=args.overwrite)
    done = [r["summary"] for r in summary["runs"] if "summary" in r]
    if done:
        print(summaries_table(done))
    print(sweep.groups_table(summary["groups"]))
    failed = print_failed(summary["runs"])
    print(f"runs directory: {out}")
    return 1 if failed else 0


def _run_name(cfg: configuration.RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cfg.name or f"{cfg.task.name}-{cfg.model.mixer}-s{cfg.train.seed}-{stamp}"
