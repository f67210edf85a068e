"""Command line: ``globalconv train``, ``globalconv compare``, and the commands of
``COMMAND_MODULES`` (eval, sweep, runs, ...).

Exit codes: bad input (config keys and values, data, run files, checkpoints: the project's
``InputError`` types) prints one line naming the problem and exits with 2; a run whose loss
diverged prints one line and exits with 3; an interrupted training run (Ctrl-C) saves its
checkpoint and exits with 130. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from globalconv import config as configuration
from globalconv.arguments import positive_int
from globalconv.core.errors import DivergedError, InputError
from globalconv.core.tables import format_table

DIVERGED = 3  # the exit code of a run whose training loss became NaN or infinite

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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", help="YAML or JSON config file (defaults otherwise)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="dotted overrides, e.g. model.d_model=128 train.lr=3e-4",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from globalconv.train import executors

    parser = argparse.ArgumentParser(
        prog="globalconv",
        description="Can self-attention be replaced by a global depthwise convolution?",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "train",
        help="train one model and write a run directory",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
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
    _add_match(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "compare",
        help="run a comparison suite (mixers x tasks x seeds) and print its tables",
        description="Run a comparison suite; finished runs are skipped, partial ones resumed. "
        "Then `globalconv report OUT` writes the answer as a document.",
        epilog=COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    p.add_argument("--suite", default="quick", help="quick (default), depth or full; see --list")
    p.add_argument("--list", action="store_true", help="describe the suites and exit")
    p.add_argument("--mixers", help="comma-separated mixers (default: the suite's)")
    p.add_argument("--tasks", help="comma-separated task labels of the suite (default: all)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the suite's)")
    p.add_argument("--depths", help="comma-separated numbers of layers (default: the suite's)")
    p.add_argument("--widths", help="comma-separated reference widths (default: the suite's)")
    p.add_argument(
        "--steps", type=positive_int, help="training steps per run (overrides every task's)"
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="tune this axis on validation instead of the suite's grid (repeatable), "
        "e.g. --grid train.lr=1e-3,3e-3 --grid train.weight_decay=0,0.1",
    )
    p.add_argument(
        "--no-tune", action="store_true", help="tune nothing: train the configured values only"
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        help="runs trained in parallel by the local executor, each on cores/jobs threads "
        "(default: one per core, measured faster than one run on every core for the suites' "
        "small models)",
    )
    executors.add_options(p)
    p.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="train again the runs already in --out that were made with another config "
        "(without it they are an error naming what differs)",
    )
    p.add_argument(
        "--reference",
        default="results",
        metavar="DIR",
        help="committed studies whose number for the same cell is printed beside each fresh "
        "one (default results, when it exists)",
    )
    p.add_argument(
        "--out", default="runs/compare", help="directory for the runs (default runs/compare)"
    )
    _add_match(p)
    p.set_defaults(func=cmd_compare)

    for module in _command_modules():
        module.add_cli(sub)
    return parser


# Commands that live beside the code they drive: each module has add_cli(subparsers), which
# adds its parser and sets func=<handler(args) -> exit code>. Add a command with one line here.
COMMAND_MODULES: list[str] = [
    "globalconv.train.evaluation",
    "globalconv.train.sweep",
    "globalconv.train.runs",
    "globalconv.analysis.kernel_plots",
    "globalconv.analysis.lengths",
    "globalconv.tasks.catalog",
    "globalconv.analysis.report",
    "globalconv.analysis.bench_op",
    "globalconv.analysis.bench_mixers",
    "globalconv.hf.finetune",
    "globalconv.hf.bench_generate",
    "globalconv.analysis.bench_train",
    "globalconv.analysis.bench_gpu",
]


def _command_modules():
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


def _add_match(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--match",
        choices=["params", "flops"],
        help="size each model (width; match.dimension=depth for depth) to the reference "
        "(match.reference, default attention at the configured size) by parameters or "
        "FLOPs per token at the task's length, within match.tolerance (default 5%%)",
    )


def _load(args: argparse.Namespace, extra: list[str] | None = None) -> configuration.RunConfig:
    data = configuration.load_file(args.config) if args.config else {}
    match = [f"match.by={args.match}"] if getattr(args, "match", None) else []
    overrides = (extra or []) + match + args.overrides
    return configuration.parse(configuration.apply_overrides(data, overrides))


def cmd_train(args: argparse.Namespace) -> int:
    from globalconv.core import io
    from globalconv.train import train

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
        if not (out / "config.json").is_file():
            raise io.MissingRunFileError(f"{out} has no config.json: not a run directory")
        io.read_json(out / "config.json")  # damaged: an error naming it
        args.config = str(out / "config.json")
        summary = train(_load(args), out, progress=not args.quiet, resume=True)
        _report(summary, out)
        return 0
    cfg = _load(args)
    if args.seeds:
        return _train_seeds(args, cfg)
    out = Path(args.out) if args.out else Path("runs") / _run_name(cfg)
    summary = train(cfg, out, progress=not args.quiet, overwrite=args.overwrite)
    _report(summary, out)
    return 0


def _report(summary: dict[str, Any], out: Path) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one process speaks
        print(_table([summary]))
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
        print(_table(done))
    print(sweep.groups_table(summary["groups"]))
    failed = [r for r in summary["runs"] if r["status"] == "failed"]
    for r in failed:
        print(f"failed: {r['name']}: {r['error']}")
    print(f"runs directory: {out}")
    return 1 if failed else 0


def _run_name(cfg: configuration.RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cfg.name or f"{cfg.task.name}-{cfg.model.mixer}-s{cfg.train.seed}-{stamp}"


COMPARE_EXAMPLES = """examples:
  globalconv compare                                   # the quick suite (what make run runs)
  globalconv report runs/compare                       # ... turned into report.md / report.html
  globalconv compare --list
  globalconv compare --mixers attention,global_conv,hyena,fnet --tasks mnist1d
  globalconv compare --suite depth --tasks mqar --jobs 2 --out runs/depth
  globalconv compare --suite full --jobs 2 --out runs/full model.d_model=128
  globalconv compare --suite depth --executor ray --out /shared/runs/depth   # on RAY_ADDRESS
"""


def cmd_compare(args: argparse.Namespace) -> int:
    from globalconv.analysis import suite
    from globalconv.core import io
    from globalconv.train import executors, sweep

    if args.list:
        print(suite.describe())
        return 0
    running = executors.options(args, args.jobs)
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.match:
        overrides.append(f"match.by={args.match}")
    try:
        seeds = [int(s) for s in split(args.seeds) or []] or None
        depths = [int(d) for d in split(args.depths) or []] or None
        widths = [int(w) for w in split(args.widths) or []] or None
    except ValueError:
        raise configuration.ConfigError(
            f"--seeds, --depths and --widths take integers, got {args.seeds!r}, "
            f"{args.depths!r} and {args.widths!r}"
        ) from None
    grid = {} if args.no_tune else None
    for item in args.grid:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise configuration.ConfigError(f"--grid {item!r} must look like key.path=v1,v2")
        grid = {**(grid or {}), key: sweep.parse_values(values)}
    cells = suite.plan(
        args.suite,
        mixer_names=split(args.mixers),
        task_labels=split(args.tasks),
        seeds=seeds,
        depths=depths,
        widths=widths,
        grid=grid,
        overrides=overrides,
        base=configuration.load_file(args.config) if args.config else None,
    )
    out = Path(args.out)
    if args.dry_run:
        for cell in cells:
            for point in cell.points():
                print(out / cell.run_name(point, cell.tune_seed))
            print(f"{out / cell.name}/<chosen>-s{{{','.join(map(str, cell.seeds))}}}")
        return 0
    summary = suite.run(cells, out, progress=not args.quiet, rerun=args.rerun, **running)
    done = [(r["settings"]["task"], r["summary"], out / r["name"]) for r in summary["runs"]
            if "summary" in r]  # fmt: skip
    known = None
    if args.reference and Path(args.reference).is_dir():
        from globalconv.analysis.report import cell_key, reference_scores

        known = reference_scores(Path(args.reference))
    for label in dict.fromkeys(label for label, _, _ in done):
        rows = [(s, run_dir) for task, s, run_dir in done if task == label]
        studied = None
        if known is not None:
            studied = [known.get(cell_key(label, io.read_json(d / "config.json")), "-")
                       for _, d in rows]  # fmt: skip
        print(_table([s for s, _ in rows], studied, label) + "\n")
    print(selection_table(summary["cells"]) + "\n")
    if any(len(g.get("runs", [])) > 1 for g in summary["groups"]):
        print(sweep.groups_table(summary["groups"]))
    for r in summary["failed"]:
        print(f"failed: {r['name']}: {r['error']}")
    print(f"runs directory: {out}\nthe answer as a document: globalconv report {out}")
    return 1 if summary["failed"] else 0


def selection_table(cells: list[dict[str, Any]]) -> str:
    """Per cell: each grid point's validation score, the choice, and a warning at the edge."""
    from globalconv.train import sweep

    rows = []
    for cell in cells:
        key = cell["selected_by"]
        scores = []
        for point in cell["points"]:
            value = (point.get("valid") or {}).get(key)
            label = sweep.run_name(point["settings"]) if point["settings"] else "-"
            scores.append(f"{label}: {'failed' if value is None else f'{value:.4f}'}")
        chosen = cell["chosen"]
        chosen = "none" if chosen is None else sweep.run_name(chosen) if chosen else "-"
        chosen += f" (at the grid's edge in {', '.join(cell['at_edge'])}: widen it)" * bool(
            cell["at_edge"]
        )
        if cell.get("fixed"):  # chosen elsewhere, not tuned here
            fixed = f"{sweep.run_name(cell['fixed'])}, {cell.get('fixed_from') or 'fixed'}"
            chosen = fixed if chosen == "-" else f"{chosen}; {fixed}"
        rows.append([cell["cell"], key or "-", "; ".join(scores), chosen])
    return format_table(["cell", "selected by", "grid (validation)", "chosen"], rows)


def _table(
    summaries: list[dict[str, Any]], studied: list[str] | None = None, label: str | None = None
) -> str:
    """One row per run; ``studied``: the reference study's result for each row's cell;
    ``label``: the task as the suite names it (else the task's name)."""
    metric = summaries[0]["metric"]
    key = "test_accuracy" if metric == "accuracy" else "test_bits_per_token"
    header = ["task", "mixer", "d_model", "layers", "params", "FLOPs/token", "train s", "tokens/s"]
    header.append(f"test {metric}")
    rows = [
        [
            label or s["task"],
            s["mixer"],
            s.get("d_model", "-"),
            s.get("n_layers", "-"),
            f"{s['params']:,}",
            f"{s['flops_per_token']:,.0f}" if s.get("flops_per_token") is not None else "-",
            f"{s['train_seconds']:.1f}",
            f"{s['train_tokens_per_s']:,.0f}",
            f"{s[key]:.4f}",
        ]
        for s in summaries
    ]
    if studied is not None:
        header.append("reference study")
        rows = [row + [ref] for row, ref in zip(rows, studied, strict=True)]
    return format_table(header, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of any command; KEY=VALUE overrides may come before, between or after the
    options (``train task.name=mqar -q train.steps=5``), in the order given. argparse stops
    collecting a positional list at the first option, so what it leaves over is taken here when
    it is overrides, and refused as before when it is not."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        overrides = [e for e in extra if "=" in e and not e.startswith("-")]
        if len(overrides) < len(extra) or not isinstance(getattr(args, "overrides", None), list):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += overrides
    return args


@contextlib.contextmanager
def _interrupt_after_imports():
    """Hold a Ctrl-C that comes while the libraries load until they have: an interrupt inside
    an import is swallowed by some libraries' own import code (numpy, then, is half loaded and
    fails with a RecursionError, not a KeyboardInterrupt) or marks the interpreter to die by
    SIGINT at exit whatever the exit code."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    command = "globalconv"
    try:  # Ctrl-C while torch and the commands load is an interrupt too, not a traceback
        with _interrupt_after_imports():
            args = parse_args(argv)
            import torch  # noqa: F401  (every command uses it: loaded here, under the guard)
        command = f"globalconv {args.command}"
        return args.func(args)
    except InputError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except DivergedError as err:
        print(f"{command}: diverged: {err}", file=sys.stderr)
        return DIVERGED
    except KeyboardInterrupt as err:
        print(f"{command}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
