"""``globalconv lengths``: train at one length, evaluate at others.

The task (generated here, deterministic from a seed): tokens from a vocabulary of 8
symbols, two of them, a and b, appear only in planted motifs "a b" or "b a", each followed by a
background token; the label says whether "a b" occurs more often than "b a". The number of motifs
is a fixed fraction of the length, so the rule and the class balance do not depend on the length,
and telling the two motifs apart needs order (a model must relate neighbouring positions).

Each model is trained at --train-len and evaluated on fresh test sets at each factor times
that length. Global convolutions with the explicit, frequency and multiscale kernels are trained
once and evaluated twice: as trained (a shorter sequence uses the first n taps; a longer one is
an error) and rebuilt with resample=True from the same weights (explicit and multiscale
stretch the kernel over relative position, frequency interpolates its filter over relative
frequency; see globalconv.kernels). The implicit kernel is evaluated at the new offsets.
Attention is trained with sinusoidal positions (computed for any length) and learned positions
(a table of train-len rows: longer inputs are errors).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from globalconv.arguments import positive_float, positive_int
from globalconv.cli.common import comma_list
from globalconv.core.errors import ConfigError

EXAMPLES = """examples:
  globalconv lengths                                   # the default run, a few minutes on CPU
  globalconv lengths --train-len 32 --factors 0.5,2,8 --seeds 0,1,2
  globalconv lengths --models explicit,implicit --steps 300 --out runs/lengths
"""

# the keys of globalconv.analysis.lengths.MODELS, named here so that parsing loads no torch (a
# test checks that the two agree)
MODELS = (
    "explicit",
    "frequency",
    "multiscale",
    "implicit",
    "attention-sinusoidal",
    "attention-learned",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lengths",
        help="length generalisation: train at one length, evaluate at others, print a table",
        description=__doc__.split("\n\n", 1)[1],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated, from: {', '.join(MODELS)} (default: all)",
    )
    p.add_argument(
        "--train-len", type=positive_int, default=64, help="training length (default 64)"
    )
    p.add_argument(
        "--factors",
        default="0.5,2,4",
        help="evaluation lengths as multiples of the training length (default 0.5,2,4)",
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--steps", type=positive_int, default=600, help="training steps (default 600)")
    p.add_argument("--d-model", type=positive_int, default=32, help="model width (default 32)")
    p.add_argument("--layers", type=positive_int, default=2, help="blocks (default 2)")
    p.add_argument(
        "--lr", type=positive_float, default=3e-3, help="peak learning rate (default 3e-3)"
    )
    p.add_argument(
        "--n-train", type=positive_int, default=4000, help="training examples (default 4000)"
    )
    p.add_argument(
        "--n-test", type=positive_int, default=500, help="test examples per length (default 500)"
    )
    p.add_argument("--out", help="also write the results as JSON to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-model progress lines")
    p.set_defaults(func=run)


def _numbers(text: str, kind, what: str) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"--{what} needs at least one value")
    return values


def run(args: argparse.Namespace) -> int:
    from globalconv.analysis import lengths
    from globalconv.core import io

    factors = _numbers(args.factors, float, "factors")
    if any(f <= 0 for f in factors):
        raise ConfigError(f"--factors must be positive, got {args.factors}")
    for name in ("train_len", "steps", "d_model", "layers", "n_train", "n_test"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if not args.lr > 0:
        raise ConfigError(f"--lr must be positive, got {args.lr}")
    results = lengths.run(
        models=comma_list(args.models),
        train_len=args.train_len,
        factors=factors,
        seeds=_numbers(args.seeds, int, "seeds"),
        steps=args.steps,
        d_model=args.d_model,
        n_layers=args.layers,
        n_train=args.n_train,
        n_test=args.n_test,
        lr=args.lr,
        progress=not args.quiet,
    )
    print(
        f"motif majority, trained at length {results['train_len']} for {results['steps']} steps "
        f"(lr {results['lr']:g}), "
        f"test accuracy (chance 0.5), seeds {results['seeds']}; n/a: the model cannot run there"
    )
    print(lengths.table(results))
    if args.out:
        io.write_json(Path(args.out), results)
    return 0
