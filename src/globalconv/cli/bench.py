"""``globalconv bench ...``: the benchmarks, speed and memory measured side by side on this
machine: ``op``, ``mixers``, ``generate``, ``train``, and ``gpu``, which runs the others on a CUDA
device. The measurements themselves are in ``globalconv.analysis.bench_*`` and
``globalconv.hf.bench_generate``; here are their options, checks and output files.

One file (past 400 lines) because it is one command, as every command is one module: its
subcommands share the device and thread checks, each one's options beside its handler.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from globalconv.arguments import int_list, nonnegative_int, positive_float, positive_int
from globalconv.cli.common import comma_list
from globalconv.core.errors import ConfigError

EPILOG = """examples:
  globalconv bench op                                   # the operator at B=4, D=256
  globalconv bench op --sizes 512,2048 --modes circular --repeats 3
  globalconv bench op --parts model                     # training tokens/s, conv vs attention
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks: speed and memory measured side by side on this machine",
        description="Benchmarks: speed and memory measured side by side on this machine.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    benchmarks = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    _add_op(benchmarks)
    _add_mixers(benchmarks)
    _add_generate(benchmarks)
    _add_train(benchmarks)
    _add_gpu(benchmarks)


def _check_device(device: str, message: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(message)


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# bench op

OP_DESCRIPTION = """\
``globalconv bench op``: how fast the global convolution is on this machine, side by side with
the FFT floor, attention and the literal direct convolution.

Parts (``--parts``, comma separated):

* ``table``: for each mode and length, forward+backward and forward only of ``global_conv``
  (input (B, L, D) as users pass it) through the FFT paths -- ``fft`` (torch.fft on a
  (B, D, N) copy) and, on CPU, ``native`` (the compiled kernel along the (B, L, D) layout,
  where it builds) and ``pocketfft`` (scipy.fft along the strided axis) -- against the
  *FFT floor*, one bare ``rfft`` + ``irfft`` pair over the length axis of a contiguous (B, D, N)
  tensor, N the mode's transform length (forward+backward needs two such pairs and the
  kernel's, the forward one); the direct path where feasible; for circular and causal also the
  plain composition it replaces (rfft, multiply, irfft under autograd) and the ``global_conv``
  mixer against the ``attention`` mixer (SDPA) at the same B, L, D. Last column: what
  ``backend="auto"`` picks.
* ``breakdown``: where the ``fft`` path's time goes: it and the floor timed side by side,
  and its time split by ``torch.profiler`` into transforms, layout changes between
  (B, L, D) and (B, D, N), spectral products, and the rest, each in units of the floor.
* ``crossover``: direct vs ``fft`` vs ``native`` vs auto over lengths 8..16384, and auto's time
  over the fastest.
* ``memory``: peak bytes of tensors created by forward+backward (output and gradients
  included), and bytes saved for backward, in units of the input's size (``fft`` and
  ``native``; the latter's own strip buffers are not tensors and are not counted).
* ``model``: training tokens/s of an n-layer Transformer with global_conv mixers against the
  same model with attention (forward, loss, backward, AdamW step).

Every number is a median of interleaved rounds after warm-up; ratios are taken within a row,
so they hold up on a shared machine better than the absolute times.
"""

OP_EXAMPLES = """examples:
  globalconv bench op                                       # B=4, D=256, L=1024,4096,16384
  globalconv bench op --sizes 2048 --modes circular --repeats 9
  globalconv bench op --parts breakdown --modes circular     # transforms vs layout changes
  globalconv bench op --parts crossover --batch 8 --dim 128
  globalconv bench op --parts model --model-len 4096        # conv vs attention tokens/s
  globalconv bench op --json bench-op.json                  # also write the numbers
"""

# globalconv.analysis.bench_op.PARTS and globalconv.ops.MODES, named here so that parsing loads
# no torch (a test checks that they agree)
OP_PARTS = ("table", "breakdown", "crossover", "memory", "model")
MODES = ("circular", "causal", "full")
CROSSOVER_LENGTHS = [2**i for i in range(3, 15)]  # 8 .. 16384


def _choice_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        values = comma_list(text)
        unknown = [v for v in values if v not in choices]
        if not values or unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(choices)}"
            )
        return values

    return parse


def _add_op(benchmarks: argparse._SubParsersAction) -> None:
    p = benchmarks.add_parser(
        "op",
        help="the global convolution vs the FFT floor, attention and the direct path",
        description=OP_DESCRIPTION,
        epilog=OP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--parts",
        type=_choice_list(OP_PARTS),
        default=["table", "breakdown", "crossover", "memory"],
        help=f"what to measure, from {','.join(OP_PARTS)} (default: all but model)",
    )
    p.add_argument(
        "--sizes",
        type=int_list,
        default=[1024, 4096, 16384],
        help="sequence lengths L for table and memory (default 1024,4096,16384)",
    )
    p.add_argument(
        "--modes",
        type=_choice_list(MODES),
        default=list(MODES),
        help="operator modes (default circular,causal,full)",
    )
    p.add_argument("--batch", type=positive_int, default=4, help="batch size B (default 4)")
    p.add_argument(
        "--dim", type=positive_int, default=256, help="channels D = d_model (default 256)"
    )
    p.add_argument("--heads", type=positive_int, default=4, help="attention heads (default 4)")
    p.add_argument(
        "--repeats", type=positive_int, default=5, help="timed rounds, median kept (default 5)"
    )
    p.add_argument(
        "--warmup", type=nonnegative_int, default=1, help="untimed rounds first (default 1)"
    )
    p.add_argument(
        "--direct-max-len",
        type=nonnegative_int,
        default=4096,
        help="time the O(L^2) direct path up to this L in table/memory (default 4096)",
    )
    p.add_argument(
        "--attention-max-len",
        type=nonnegative_int,
        default=4096,
        help="time the O(L^2) attention mixer up to this L (default 4096)",
    )
    p.add_argument(
        "--crossover-lengths",
        type=int_list,
        default=CROSSOVER_LENGTHS,
        help="lengths for the crossover part (default 8,16,...,16384)",
    )
    p.add_argument(
        "--model-len", type=positive_int, default=4096, help="model part: L (default 4096)"
    )
    p.add_argument(
        "--model-batch", type=positive_int, default=2, help="model part: batch (default 2)"
    )
    p.add_argument(
        "--model-layers", type=positive_int, default=4, help="model part: layers (default 4)"
    )
    p.add_argument(
        "--model-steps",
        type=positive_int,
        default=3,
        help="model part: timed training steps per model (default 3)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--json", help="also write every measured row to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_op)


def run_op(args: argparse.Namespace) -> int:
    from globalconv.analysis import bench_op
    from globalconv.core import io

    for name in ("batch", "dim", "heads", "repeats", "model_len", "model_batch", "model_layers",
                 "model_steps"):  # fmt: skip
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    if args.dim % args.heads:
        raise ConfigError(f"--dim {args.dim} must be divisible by --heads {args.heads}")
    _check_device(
        args.device, "--device cuda asked for, but torch sees no CUDA device; use --device cpu"
    )
    _set_threads(args.threads)
    # the options of the same names
    settings = bench_op.Settings(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(bench_op.Settings)}
    )
    results = bench_op.run(settings)
    if args.json:
        io.write_json(args.json, results)
        print(f"\nwrote {args.json}")
    return 0


# ---------------------------------------------------------------------------------------------
# bench mixers

MIXERS_DESCRIPTION = """\
``globalconv bench mixers``: speed and memory of every mixer (or model) versus length.

For each length L, every mixer still in the race runs forward, and forward+backward, on the same
(B, L, D) input, timed in interleaved rounds (``analysis.bench``) and summarised by the median
and the spread (min..max of the rounds); peak extra memory is the largest live size of the
tensors a call creates. A mixer leaves the race at the first length where one call takes longer
than ``--max-seconds`` or its parameters would pass ``--max-params`` (a quadratic weight table
at 16K positions), and the table says so. Ratios to attention are measured side by side in one
process, so they hold on a busy machine. ``--level model`` times a whole Transformer (embedding,
blocks, head) instead of one mixer. ``--json`` writes every record (``globalconv report`` reads
``bench*.json`` in a runs directory) and ``--plot`` a log-log picture with fitted slopes.
"""


def _add_mixers(benchmarks: argparse._SubParsersAction) -> None:
    p = benchmarks.add_parser(
        "mixers",
        help="speed and memory of every mixer (or model) versus length",
        description=MIXERS_DESCRIPTION,
        epilog="examples:\n  globalconv bench mixers\n"
        "  globalconv bench mixers --mixers attention,global_conv --sizes 1024,4096,16384\n"
        "  globalconv bench mixers --level model --json runs/compare/bench.json --plot speed.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mixers",
        default="attention,global_conv,gated_global_conv,hyena,fnet",
        help="comma-separated mixers; 'all' for every registered one",
    )
    p.add_argument(
        "--sizes",
        type=int_list,
        default=[2**k for k in range(6, 15)],
        help="lengths (default 64,128,...,16384)",
    )
    p.add_argument(
        "--level",
        choices=["mixer", "model"],
        default="mixer",
        help="time one mixer, or a whole Transformer (default mixer)",
    )
    p.add_argument("--passes", default="forward,forward+backward", help="forward, forward+backward")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size B (default 1)")
    p.add_argument("--dim", type=positive_int, default=256, help="width D (default 256)")
    p.add_argument("--layers", type=positive_int, default=4, help="model level: layers (default 4)")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed rounds (default 5)")
    p.add_argument(
        "--warmup", type=nonnegative_int, default=1, help="untimed rounds first (default 1)"
    )
    p.add_argument(
        "--max-seconds",
        type=positive_float,
        default=2.0,
        help="drop a mixer past this many seconds per call (default 2)",
    )
    p.add_argument(
        "--max-params",
        type=positive_int,
        default=50_000_000,
        help="skip a mixer whose parameters would pass this (default 5e7)",
    )
    p.add_argument("--no-memory", dest="memory", action="store_false", help="skip peak memory")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--threads", type=positive_int, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument("--json", help="write every record to this JSON file")
    p.add_argument("--plot", help="write a log-log PNG of time versus length")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_mixers)


def run_mixers(args: argparse.Namespace) -> int:
    from globalconv import mixers
    from globalconv.analysis import bench_mixers
    from globalconv.core import io

    names = mixers.available() if args.mixers == "all" else comma_list(args.mixers)
    unknown = [m for m in names if m not in mixers.available()]
    if not names or unknown:
        raise ConfigError(
            f"unknown mixer(s) {', '.join(unknown) or '(none)'}; available: "
            f"{', '.join(mixers.available())}"
        )
    passes = [p.strip() for p in args.passes.split(",")]
    if not set(passes) <= set(bench_mixers.PASSES) or not passes:
        raise ConfigError(f"--passes takes {', '.join(bench_mixers.PASSES)}, got {passes}")
    _check_device(args.device, "--device cuda asked for, but no CUDA device is available; use cpu")
    _set_threads(args.threads)
    names = sorted(names, key=lambda n: n != "attention")  # the reference first
    device = bench_mixers.device_name(args.device)
    print(f"globalconv bench mixers: level {args.level}, B={args.batch}, D={args.dim}, {device}")
    records = bench_mixers.measure(
        names,
        args.sizes,
        level=args.level,
        passes=passes,
        batch=args.batch,
        dim=args.dim,
        layers=args.layers,
        repeats=args.repeats,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
        max_params=args.max_params,
        memory=args.memory,
        device=args.device,
        progress=not args.quiet,
    )
    bench_mixers.print_tables(records)
    if args.json:
        io.write_json(
            args.json,
            {
                "device": device,
                "batch": args.batch,
                "dim": args.dim,
                "level": args.level,
                "records": records,
            },
        )
    if args.plot:
        bench_mixers.plot(records, args.plot, device)
    return 0


# ---------------------------------------------------------------------------------------------
# bench generate

GENERATE_DESCRIPTION = """\
``globalconv bench generate``: what generating costs once attention is swapped out.

Our causal mixers keep no cache, so a swapped model's ``generate`` feeds the whole sequence at
every step: n new tokens after a prompt of p cost n forward passes over p..p+n-1 tokens, where
attention with its key-value cache passes one token each step. This times greedy ``generate``
of a GPT-2 built from a config (random weights; the cost does not depend on them) three ways,
interleaved: the original with its cache, the original without (the same recomputation), and
the swapped model; ratios are to the original with its cache.
"""


def _add_generate(benchmarks: argparse._SubParsersAction) -> None:
    p = benchmarks.add_parser(
        "generate",
        help="generation cost of a swapped GPT-2 (no cache: recomputes the prefix)",
        description=GENERATE_DESCRIPTION,
        epilog="examples:\n  globalconv bench generate\n"
        "  globalconv bench generate --prompts 64,512 --new-tokens 64 --d-model 256",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--prompts", type=int_list, default=[16, 128, 512])
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--mixer", default="global_conv")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from globalconv.core.tables import format_table
    from globalconv.hf import bench_generate

    _set_threads(args.threads)
    rows = bench_generate.measure(
        prompts=args.prompts,
        new_tokens=args.new_tokens,
        d_model=args.d_model,
        layers=args.layers,
        mixer=args.mixer,
        repeats=args.repeats,
    )
    print(
        f"greedy generate of {args.new_tokens} tokens, GPT-2 d={args.d_model}, "
        f"{args.layers} layers, {torch.get_num_threads()} threads; ms per generated token"
    )
    header = ["prompt", "attention+cache", "attention, no cache", args.mixer]
    header += ["no cache / cache", f"{args.mixer} / cache"]
    print(format_table(header, rows))
    return 0


# ---------------------------------------------------------------------------------------------
# bench train

TRAIN_DESCRIPTION = """\
``globalconv bench train``: tokens per second of the training step at the study's sizes.

For each task and mixer, the harness's own step (``_Run.train_step``: what ``globalconv train``
runs each step, batch drawing, schedule, gradient clipping and all) is timed beside a bare
hand-written PyTorch step of the same model: forward, cross-entropy at every position, backward,
AdamW with torch's defaults, ``torch.nn.Dropout``, on one fixed batch (the floor a user would
write). The two run in interleaved rounds in one process (``analysis.bench``)
and are summarised by medians, so the ratio holds on a machine shared with other work.

Variants beside the harness: ``no-dropout`` (the harness with ``model.dropout=0``: what dropout
costs) and ``compiled`` (the harness with ``train.compile=true``; its first step, the compilation,
is reported apart and amortised over ``--amortise`` steps, a typical run).
"""

# the keys of globalconv.analysis.bench_train.TASKS and VARIANTS, named here so that parsing
# loads no torch (a test checks that they agree)
TRAIN_TASKS = ("mqar", "mnist1d", "text")
TRAIN_VARIANTS = ("harness", "no-dropout", "compiled")
TRAIN_MIXERS = [
    "attention",
    "global_conv",
    "gated_global_conv",
    "hyena",
    "fnet",
    "lightconv",
    "mlp_mixer",
]


def _add_train(benchmarks: argparse._SubParsersAction) -> None:
    p = benchmarks.add_parser(
        "train",
        help="tokens/s of the training step against a bare PyTorch step, at the study's sizes",
        description=TRAIN_DESCRIPTION,
        epilog="examples:\n  globalconv bench train\n"
        "  globalconv bench train --tasks mqar --mixers hyena --variants harness,compiled\n"
        "  globalconv bench train --json runs/compare/bench-train.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--tasks", default=",".join(TRAIN_TASKS), help=f"comma-separated ({', '.join(TRAIN_TASKS)})"
    )
    p.add_argument("--mixers", default=",".join(TRAIN_MIXERS), help="comma-separated mixers")
    p.add_argument(
        "--variants",
        default="harness",
        help=f"harness steps timed beside the bare one ({', '.join(TRAIN_VARIANTS)}; default "
        "harness)",
    )
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    p.add_argument(
        "--amortise",
        type=int,
        default=2000,
        help="steps a compilation is spread over (default 2000)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", help="write every record to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_train)


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = comma_list(text)
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ConfigError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; available: {', '.join(known)}"
        )
    return names


def run_train(args: argparse.Namespace) -> int:
    import torch

    from globalconv import mixers
    from globalconv.analysis import bench_train
    from globalconv.analysis.bench_mixers import device_name
    from globalconv.core import io

    task_names = _names(args.tasks, list(bench_train.TASKS), "task(s)")
    mixer_names = _names(args.mixers, mixers.available(), "mixer(s)")
    variants = _names(args.variants, list(bench_train.VARIANTS), "variant(s)")
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.amortise < 1:
        raise ConfigError("--threads, --repeats and --amortise must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    device = device_name("cpu")
    print(f"globalconv bench train: d=64, 2 layers, batch 64, {device}")
    records = bench_train.measure(
        task_names,
        mixer_names,
        variants,
        repeats=args.repeats,
        warmup=args.warmup,
        amortise=args.amortise,
        progress=not args.quiet,
    )
    bench_train.print_table(records, args.amortise)
    if args.json:
        # under "train", not "records": the report's speed curves read "records" as bench mixers'
        io.write_json(args.json, {"device": device, "benchmark": "train", "train": records})
    return 0


# ---------------------------------------------------------------------------------------------
# bench gpu

GPU_DESCRIPTION = """\
``globalconv bench gpu`` (``make bench-gpu``): the GPU measurements in one go, about 8 minutes.

On one CUDA device, in order, each part writing JSON into ``--out`` that ``globalconv report``
reads (``bench*.json`` and the suite's runs):

- ``op``: ``globalconv bench op`` (the operator against the FFT floor and SDPA attention, the
  memory part) from L = 1K to 64K -> ``bench-op.json``;
- ``mixers``: ``globalconv bench mixers`` forward and forward+backward of the mixers from 1K to
  64K, attention through SDPA (flash kernels in bf16/fp16, memory-efficient ones in fp32)
  -> ``bench-mixers.json``;
- ``flash``: causal global convolution through FlashFFTConv (bf16, where the package is
  installed) beside the ``fft`` path (fp32) and causal SDPA attention (bf16), forward+backward
  -> ``bench-flash.json``; skipped, and said so, where ``flashfftconv`` is not importable;
- ``suite``: the quick comparison suite trained on the GPU -> ``quick/``;
- ``report``: ``globalconv report OUT``.

``--dry-run`` prints the commands without running anything (it needs no GPU).
"""

GPU_PARTS = ("op", "mixers", "flash", "suite", "report")
GPU_SIZES = [2**k for k in range(10, 17)]  # 1K .. 64K
GPU_MIXERS = "attention,global_conv,gated_global_conv,hyena,fnet"


def _add_gpu(benchmarks: argparse._SubParsersAction) -> None:
    p = benchmarks.add_parser(
        "gpu",
        help="every GPU measurement in one go (op, mixers, FlashFFTConv, a suite), ~8 minutes",
        description=GPU_DESCRIPTION,
        epilog="examples:\n  globalconv bench gpu                      # what make bench-gpu runs\n"
        "  globalconv bench gpu --dry-run\n"
        "  globalconv bench gpu --parts op,mixers --sizes 1024,8192 --out runs/gpu-short",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/gpu", help="directory for the results (default runs/gpu)")
    p.add_argument(
        "--parts", default=",".join(GPU_PARTS), help=f"comma-separated ({', '.join(GPU_PARTS)})"
    )
    p.add_argument(
        "--sizes", type=int_list, default=GPU_SIZES, help="lengths (default 1024..65536)"
    )
    p.add_argument("--dim", type=int, default=256, help="channels D (default 256)")
    p.add_argument("--suite-steps", type=int, help="steps per suite run (default: the suite's)")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N (default cuda)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_gpu)


def gpu_plan(args: argparse.Namespace) -> list[tuple[str, list[str] | None]]:
    """(part, ``globalconv`` argv) of each part of ``args.parts``, in order; the flash part is
    measured in this process (argv None)."""
    out, sizes = Path(args.out), ",".join(map(str, args.sizes))
    device = ["--device", args.device]
    steps = [] if args.suite_steps is None else ["--steps", str(args.suite_steps)]
    commands = {
        "op": ["bench", "op", *device, "--parts", "table,memory", "--sizes", sizes,
               "--dim", str(args.dim), "--attention-max-len", str(max(args.sizes)),
               "--json", str(out / "bench-op.json"), "-q"],
        "mixers": ["bench", "mixers", *device, "--sizes", sizes, "--mixers", GPU_MIXERS,
                   "--dim", str(args.dim), "--max-seconds", "2",
                   "--json", str(out / "bench-mixers.json"), "-q"],
        "flash": None,
        "suite": ["compare", "--suite", "quick", "--out", str(out / "quick"), "-q", *steps,
                  f"train.device={args.device}"],
        "report": ["report", str(out)],
    }  # fmt: skip
    return [(part, commands[part]) for part in args.parts]


def run_gpu(args: argparse.Namespace) -> int:
    import torch

    from globalconv import cli
    from globalconv.analysis.bench_gpu import measure_flash
    from globalconv.core import io

    parts = comma_list(args.parts)
    unknown = [t for t in parts if t not in GPU_PARTS]
    if not parts or unknown:
        raise ConfigError(f"--parts takes {', '.join(GPU_PARTS)}; got {args.parts!r}")
    args.parts = [t for t in GPU_PARTS if t in parts]  # always in the order above
    if args.dim < 1 or (args.suite_steps is not None and args.suite_steps < 1):
        raise ConfigError("--dim and --suite-steps must be >= 1")
    commands = gpu_plan(args)
    if args.dry_run:
        for part, argv in commands:
            print(
                f"{part}: "
                + ("measured in process" if argv is None else "globalconv " + " ".join(argv))
            )
        return 0
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        raise ConfigError(
            f"globalconv bench gpu needs a CUDA device (got --device {args.device}, CUDA "
            f"available: {torch.cuda.is_available()}); --dry-run shows what it would run"
        )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"globalconv bench gpu: {torch.cuda.get_device_name(args.device)} -> {args.out}")
    status = 0
    for part, argv in commands:
        start = time.perf_counter()
        if argv is None:
            result = measure_flash(
                args.sizes, dim=args.dim, device=args.device, progress=not args.quiet
            )
            if "skipped" in result:
                print(f"[flash] skipped: {result['skipped']}")
            else:
                device = torch.cuda.get_device_name(args.device)
                io.write_json(Path(args.out) / "bench-flash.json", {"device": device, **result})
            code = 0
        else:
            print(f"[{part}] globalconv {' '.join(argv)}", flush=True)
            code = cli.main(argv)
        print(f"[{part}] exit {code}, {time.perf_counter() - start:.0f} s", flush=True)
        status = status or code
    return status
