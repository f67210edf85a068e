"""``globalconv compare``: run a comparison suite (mixers x tasks x seeds, tuned on validation)
and print its tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from globalconv import config as configuration
from globalconv.arguments import positive_int
from globalconv.cli.common import (
    add_config_options,
    add_executor_options,
    add_match,
    comma_list,
    executor_options,
    print_failed,
    summaries_table,
)
from globalconv.core.tables import format_table

EXAMPLES = """examples:
  globalconv compare                                   # the quick suite (what make run runs)
  globalconv report runs/compare                       # ... turned into report.md / report.html
  globalconv compare --list
  globalconv compare --mixers attention,global_conv,hyena,fnet --tasks mnist1d
  globalconv compare --suite depth --tasks mqar --jobs 2 --out runs/depth
  globalconv compare --suite full --jobs 2 --out runs/full model.d_model=128
  globalconv compare --suite depth --executor ray --out /shared/runs/depth   # on RAY_ADDRESS
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="run a comparison suite (mixers x tasks x seeds) and print its tables",
        description="Run a comparison suite; finished runs are skipped, partial ones resumed. "
        "Then `globalconv report OUT` writes the answer as a document.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p)
    p.add_argument(
        "--suite",
        default="quick",
        help="quick (default), a reference study (mnist1d, recall, depth, lm, longrange) or full; "
        "see --list",
    )
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
        "--no-widen",
        action="store_true",
        help="keep the suite's grid as it is, even where the best value lies at its edge "
        "(by default the suite's widening values beyond that edge are tuned too)",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        help="runs trained in parallel by the local executor, each on cores/jobs threads "
        "(default: one per core, measured faster than one run on every core for the suites' "
        "small models)",
    )
    add_executor_options(p)
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
    add_match(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.analysis import suite
    from globalconv.train import sweep
    from globalconv.train.rundir import RunDir

    if args.list:
        print(suite.describe())
        return 0
    running = executor_options(args, args.jobs)
    overrides = list(args.overrides)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.match:
        overrides.append(f"match.by={args.match}")
    try:
        seeds = [int(s) for s in comma_list(args.seeds)] or None
        depths = [int(d) for d in comma_list(args.depths)] or None
        widths = [int(w) for w in comma_list(args.widths)] or None
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
        mixer_names=comma_list(args.mixers) if args.mixers else None,
        task_labels=comma_list(args.tasks) if args.tasks else None,
        seeds=seeds,
        depths=depths,
        widths=widths,
        grid=grid,
        overrides=overrides,
        base=configuration.load_file(args.config) if args.config else None,
        widen=not args.no_widen,
    )
    out = Path(args.out)
    if args.dry_run:
        for cell in cells:
            for point in cell.points():
                print(out / cell.run_name(point, cell.tune_seed))
            for key, values in cell.widen.items():
                print(f"{out / cell.name}/<at the edge: {key} in {values}, the nearest beyond it>"
                      f"-s{cell.tune_seed}")  # fmt: skip
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
            studied = [known.get(cell_key(label, RunDir(d).read_config()), "-") for _, d in rows]
        print(summaries_table([s for s, _ in rows], studied, label) + "\n")
    print(selection_table(summary["cells"]) + "\n")
    if any(len(g.get("runs", [])) > 1 for g in summary["groups"]):
        print(sweep.groups_table(summary["groups"]))
    failed = print_failed(summary["failed"])
    print(f"runs directory: {out}\nthe answer as a document: globalconv report {out}")
    return 1 if failed else 0


def selection_table(cells: list[dict[str, Any]]) -> str:
    """Per cell: each grid point's validation score, the choice, and a warning at the edge."""
    from globalconv.analysis.report.tables import widened_note
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
        chosen += widened_note(cell.get("widened"))
        if cell.get("fixed"):  # chosen elsewhere, not tuned here
            fixed = f"{sweep.run_name(cell['fixed'])}, {cell.get('fixed_from') or 'fixed'}"
            chosen = fixed if chosen == "-" else f"{chosen}; {fixed}"
        rows.append([cell["cell"], key or "-", "; ".join(scores), chosen])
    return format_table(["cell", "selected by", "grid (validation)", "chosen"], rows)
