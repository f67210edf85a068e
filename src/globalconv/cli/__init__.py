"""Command line: ``globalconv COMMAND``, one module of this package per command (``train``,
``compare``, ``eval``, ``sweep``, ``runs``, ``kernels``, ``lengths``, ``tasks``, ``report``, the
``bench`` commands, ``finetune``), each with ``add_parser(subparsers)`` and the handler it sets as
``func``. Parsing loads no torch: the handlers import what they run.

Exit codes: bad input (config keys and values, data, run files, checkpoints: the project's
``InputError`` types) prints one line naming the problem and exits with 2; a run whose loss
diverged prints one line and exits with 3; an interrupted training run (Ctrl-C) saves its
checkpoint and exits with 130. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from globalconv.cli import (
    bench,
    compare,
    eval,
    finetune,
    kernels,
    lengths,
    report,
    runs,
    sweep,
    tasks,
    train,
)
from globalconv.core.errors import DivergedError, InputError

DIVERGED = 3  # the exit code of a run whose training loss became NaN or infinite


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="globalconv",
        description="Can self-attention be replaced by a global depthwise convolution?",
        epilog=train.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, compare, eval, sweep, runs, kernels, lengths, tasks, report, bench,
                    finetune):  # fmt: skip
        command.add_parser(sub)
    return parser


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
    try:  # Ctrl-C while the arguments parse and torch loads is an interrupt too, not a traceback
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
