"""``globalconv eval RUN_DIR``: re-evaluate a finished run's saved model, optionally at another
length or with other task parameters."""

from __future__ import annotations

import argparse
from pathlib import Path

from globalconv.arguments import positive_int
from globalconv.core.tables import format_table

EXAMPLES = """examples:
  globalconv eval runs/mnist1d-global_conv             # the test (and valid) split, as trained
  globalconv eval runs/mqar-attention --length 512     # at another length (tasks with seq_len)
  globalconv eval runs/x task.params.shuffled=true --split test --out eval-shuffled.json

Writes RUN_DIR/eval-L<length>.json (or --out) and prints the metrics.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="re-evaluate a run's saved model, optionally at another length",
        description="Rebuild a finished run's model from config.json and model.safetensors and "
        "score it on its task's splits, optionally with changed task parameters.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("overrides", nargs="*", metavar="task.KEY=VALUE", help="task settings to change")
    p.add_argument("--length", type=positive_int, help="evaluate at this sequence length")
    p.add_argument(
        "--split", action="append", help="split to score (repeatable; default: all but train)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, help="evaluation batch size (default: the run's)"
    )
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--out", help="result file (default RUN_DIR/eval-L<length>.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from globalconv.core import io
    from globalconv.train import lock
    from globalconv.train.evaluation import evaluate_run

    if not Path(args.run_dir).is_dir():
        raise io.MissingRunFileError(f"{args.run_dir} is not a directory; pass a run directory")
    with lock.locked(args.run_dir):  # not while a resumed run rewrites its weights
        result = evaluate_run(
            args.run_dir,
            args.overrides,
            length=args.length,
            splits=args.split,
            batch_size=args.batch_size,
            device=args.device,
        )
        names = sorted({k for m in result["results"].values() for k in m})
        rows = [[s, *(f"{m.get(k, float('nan')):.4f}" for k in names)]
                for s, m in result["results"].items()]  # fmt: skip
        print(
            f"{result['task']} at length {result['seq_len']} "
            f"(trained at {result['trained_seq_len']})"
        )
        print(format_table(["split", *names], rows))
        out = Path(args.out) if args.out else Path(args.run_dir) / f"eval-L{result['seq_len']}.json"
        io.write_json(out, result, checksum=True)
        print(f"written: {out}")
    return 0
