"""``globalconv report RUNS_DIR``: the runs in a directory turned into the answer.

Reads every run directory below RUNS_DIR (a folder with ``summary.json``; ``config.json`` and
``metrics.jsonl`` beside it) and any benchmark result (``bench*.json``), and writes
``report.md``, a self-contained ``report.html`` and the PNG plots into the output folder. Every
number in its tables is read from those files; nothing is typed in, except the literature table,
whose figures are quoted with their sources.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from globalconv.arguments import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="turn a directory of runs into report.md, report.html and plots",
        description=__doc__,
        epilog="examples:\n  globalconv compare --out runs/compare\n"
        "  globalconv report runs/compare\n"
        "  globalconv report runs/full --out reports/full --width 128",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs_dir", help="directory holding run directories (searched recursively)")
    p.add_argument("--out", help="output folder (default RUNS_DIR/report)")
    p.add_argument(
        "--width",
        type=positive_int,
        default=256,
        help="model width D for the cost tables (default 256)",
    )
    p.add_argument(
        "--reference",
        metavar="DIR",
        help="committed studies (e.g. results): show each cell's number there beside the fresh one",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.analysis.report import build_report
    from globalconv.core import io

    root = Path(args.runs_dir)
    if not root.is_dir():
        raise io.MissingRunFileError(f"runs directory {root} does not exist")
    reference = Path(args.reference) if args.reference else None
    out = Path(args.out) if args.out else root / "report"
    out = build_report(root, out, width=args.width, reference=reference)
    print(f"report: {out / 'report.md'}\n        {out / 'report.html'}")
    return 0
