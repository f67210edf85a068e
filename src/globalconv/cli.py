"""Command line: ``globalconv train``, ``globalconv compare``.

Bad input (config keys, values, files) prints one line naming the problem and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from globalconv import config as configuration

EXAMPLES = """examples:
  globalconv train model.mixer=global_conv train.steps=500
  globalconv train -c configs/mnist1d.yaml model.d_model=128 --out runs/wide
  globalconv compare --mixers attention,global_conv --steps 1500
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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "compare",
        help="train several mixers on one task and print a table",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    p.add_argument(
        "--mixers",
        default="attention,global_conv",
        help="comma-separated mixer names (default: attention,global_conv)",
    )
    p.add_argument("--steps", type=int, help="training steps per model (overrides train.steps)")
    p.add_argument(
        "--out", default="runs/compare", help="directory for the runs (default runs/compare)"
    )
    p.set_defaults(func=cmd_compare)

    for module in _command_modules():
        module.add_cli(sub)
    return parser


# Commands that live beside the code they drive: each module has add_cli(subparsers), which
# adds its parser and sets func=<handler(args) -> exit code>. Add a command with one line here.
COMMAND_MODULES: list[str] = [
    "globalconv.analysis.bench_op",
]


def _command_modules():
    import importlib

    return [importlib.import_module(name) for name in COMMAND_MODULES]


def _load(args: argparse.Namespace, extra: list[str] | None = None) -> configuration.RunConfig:
    data = configuration.load_file(args.config) if args.config else {}
    return configuration.parse(configuration.apply_overrides(data, (extra or []) + args.overrides))


def cmd_train(args: argparse.Namespace) -> int:
    from globalconv.train import train

    cfg = _load(args)
    out = Path(args.out) if args.out else Path("runs") / _run_name(cfg)
    summary = train(cfg, out, progress=not args.quiet)
    print(_table([summary]))
    print(f"run directory: {out}")
    return 0


def _run_name(cfg: configuration.RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cfg.name or f"{cfg.task.name}-{cfg.model.mixer}-s{cfg.train.seed}-{stamp}"


# The default comparison: fast on a 2-core CPU, long enough for the gap between mixers to show.
COMPARE_DEFAULTS = ["train.steps=1500", "train.lr=3e-3", "train.warmup_steps=100"]


def cmd_compare(args: argparse.Namespace) -> int:
    from globalconv import mixers
    from globalconv.train import train

    names = [m.strip() for m in args.mixers.split(",") if m.strip()]
    unknown = [m for m in names if m not in mixers.available()]
    if not names or unknown:
        raise configuration.ConfigError(
            f"unknown mixer(s) {', '.join(unknown) or '(none given)'}; "
            f"available: {', '.join(mixers.available())}"
        )
    steps = [f"train.steps={args.steps}"] if args.steps else []
    summaries = []
    for name in names:
        cfg = _load(args, COMPARE_DEFAULTS + steps + [f"model.mixer={name}"])
        summaries.append(
            train(cfg, Path(args.out) / f"{cfg.task.name}-{name}", progress=not args.quiet)
        )
    print(_table(summaries))
    return 0


def _table(summaries: list[dict[str, Any]]) -> str:
    metric = summaries[0]["metric"]
    key = "test_accuracy" if metric == "accuracy" else "test_bits_per_token"
    header = ["task", "mixer", "params", "FLOPs/token", "train s", "tokens/s", f"test {metric}"]
    rows = [
        [
            s["task"],
            s["mixer"],
            f"{s['params']:,}",
            f"{s['flops_per_token']:,.0f}",
            f"{s['train_seconds']:.1f}",
            f"{s['train_tokens_per_s']:,.0f}",
            f"{s[key]:.4f}",
        ]
        for s in summaries
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (configuration.ConfigError, ValueError, FileNotFoundError) as err:
        print(f"globalconv {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
