"""``globalconv tasks``: the registered tasks with their parameters and metrics."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  globalconv tasks                      every task, its metric and parameters
  globalconv tasks mqar listops         just these
  globalconv tasks --json               machine-readable
  globalconv train task.name=mqar task.params.seq_len=128 task.params.num_kv_pairs=16
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tasks",
        help="list the tasks with their parameters and metrics",
        description=(
            "List the registered tasks: what each is, its metric, and its parameters "
            "(set them with task.params.NAME=VALUE in train and compare)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="TASK", help="tasks to show (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv import tasks
    from globalconv.tasks import catalog

    entries = [catalog.describe(name) for name in args.names or tasks.available()]
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        print("\n\n".join(catalog.render(e) for e in entries))
    return 0
