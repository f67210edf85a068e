"""``globalconv runs DIR``: a table of the runs under a directory, finished or not."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  globalconv runs runs/                 # every run under runs/, finished or not
  globalconv runs runs/my-sweep         # a sweep's runs, then its mean ± std over seeds

Status: done, early stop, step K/N (has a checkpoint: resume with globalconv train --resume
DIR), no checkpoint (stopped before its first checkpoint), bad checkpoint (damaged file).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "runs",
        help="print a table of the runs in a directory",
        description="Print one line per run directory (a folder with config.json) under DIR.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", metavar="DIR", help="directory to search (recursively)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.core import io
    from globalconv.train.runs import runs_table
    from globalconv.train.sweep import SUMMARY, groups_table

    root = Path(args.dir)
    if not root.is_dir():
        raise io.MissingRunFileError(f"{root} is not a directory")
    table = runs_table(root)
    print(table or f"no runs under {root}")
    sweep = root / SUMMARY
    if sweep.is_file():
        print()
        print(groups_table(io.read_json(sweep)["groups"]))
    return 0
