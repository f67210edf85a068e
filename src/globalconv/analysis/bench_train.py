"""``globalconv bench train``: tokens per second of the training step at the study's sizes.

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

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from globalconv import config as configuration
from globalconv import mixers
from globalconv.analysis import bench
from globalconv.core import io
from globalconv.core.errors import ConfigError
from globalconv.core.tables import format_table
from globalconv.tasks import IGNORE_INDEX

# The study's shapes: what the quick and depth suites train, at d=64, 2 layers, batch 64.
TASKS: dict[str, list[str]] = {
    "mqar": [
        "task.name=mqar",
        "task.params.seq_len=64",
        "task.params.num_kv_pairs=8",
        "task.params.vocab_size=1024",
    ],
    "mnist1d": ["task.name=mnist1d"],
    "text": ["task.name=text", "task.params.seq_len=128", "task.params.max_bytes=2000000"],
}
MODEL = ["model.d_model=64", "model.n_layers=2", "train.batch_size=64"]
MIXERS = [
    "attention",
    "global_conv",
    "gated_global_conv",
    "hyena",
    "fnet",
    "lightconv",
    "mlp_mixer",
]
VARIANTS: dict[str, list[str]] = {
    "harness": [],
    "no-dropout": ["model.dropout=0"],
    "compiled": ["train.compile=true"],
}


def _config(task: str, mixer: str, overrides: list[str]) -> configuration.RunConfig:
    data = configuration.apply_overrides({}, [*TASKS[task], *MODEL, f"model.mixer={mixer}"])
    return configuration.parse(configuration.apply_overrides(data, overrides))


def harness_step(cfg: configuration.RunConfig) -> tuple[Callable[[], None], int]:
    """One call = one ``globalconv train`` step of ``cfg``; and the tokens each step reads."""
    from globalconv.train import distributed
    from globalconv.train.loop import _Run, _StopOnSignal

    run = _Run(cfg, Path(tempfile.gettempdir()), distributed.Dist(), "cpu", False, False, False)
    stop = _StopOnSignal()  # never entered: no signal handlers, never asks to stop
    tokens = cfg.train.batch_size * run.spec.max_len

    def step() -> None:
        run.train_step(run.step, stop)
        run.step += 1

    return step, tokens


def bare_step(cfg: configuration.RunConfig) -> Callable[[], None]:
    """Forward, cross-entropy at every position, backward, AdamW (torch's defaults): the same
    model with ``torch.nn.Dropout``, nothing else."""
    from globalconv.models import build_model
    from globalconv.models.dropout import Dropout
    from globalconv.train.loop import task_data

    task, splits, _ = task_data(cfg)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, task.spec)
    for module in list(model.modules()):  # torch's own dropout: the bare step is plain PyTorch
        for name, child in module.named_children():
            if isinstance(child, Dropout):
                setattr(module, name, torch.nn.Dropout(child.p))
    tc = cfg.train
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tc.lr, betas=tc.betas, eps=tc.eps, weight_decay=tc.weight_decay
    )
    model_inputs, targets = splits["train"].batch(torch.arange(tc.batch_size))
    targets = targets.reshape(-1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = model(**model_inputs)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets, ignore_index=IGNORE_INDEX
        )
        loss.backward()
        optimizer.step()

    return step


def measure_pair(
    task: str, mixer: str, variants: list[str], *, repeats: int, warmup: int, amortise: int
) -> list[dict[str, Any]]:
    """Records of the bare step and each variant of the harness's step for one task and mixer."""
    candidates: dict[str, Callable[[], None]] = {"bare": bare_step(_config(task, mixer, []))}
    compile_seconds: dict[str, float] = {}
    tokens = 0
    for variant in variants:
        step, tokens = harness_step(_config(task, mixer, VARIANTS[variant]))
        if variant == "compiled":
            # a fresh start per model: past dynamo's recompile limit it would silently run eager
            torch._dynamo.reset()
            start = time.perf_counter()
            step()  # compiles the model: timed apart, not in the rounds
            compile_seconds[variant] = time.perf_counter() - start
        candidates[variant] = step
    rounds = bench.time_rounds(candidates, repeats=repeats, warmup=warmup)
    bare = statistics.median(rounds["bare"])
    records = []
    for name, times in rounds.items():
        median = statistics.median(times)
        record = {
            "task": task,
            "mixer": mixer,
            "variant": name,
            "tokens": tokens,
            "median_ms": 1e3 * median,
            "min_ms": 1e3 * min(times),
            "max_ms": 1e3 * max(times),
            "tokens_per_s": tokens / median,
            "vs_bare": bare / median,
        }
        if name in compile_seconds:
            first = compile_seconds[name] - median  # the compilation beyond one step
            total = first + amortise * median
            record["compile_s"] = first
            record["amortised_tokens_per_s"] = amortise * tokens / total
            record["amortised_vs_bare"] = amortise * bare / total
        records.append(record)
    return records


def print_table(records: list[dict[str, Any]], amortise: int) -> None:
    rows = []
    for r in records:
        if "skipped" in r:
            rows.append([r["task"], r["mixer"], "-", "-", "-", "-", r["skipped"]])
            continue
        note = ""
        if "compile_s" in r:
            note = (
                f"compile {r['compile_s']:.1f} s; over {amortise} steps "
                f"{r['amortised_tokens_per_s']:,.0f} tok/s ({r['amortised_vs_bare']:.2f}x)"
            )
        rows.append(
            [
                r["task"],
                r["mixer"],
                r["variant"],
                f"{r['median_ms']:.1f}",
                f"{r['tokens_per_s']:,.0f}",
                f"{r['vs_bare']:.2f}",
                note,
            ]
        )
    header = ["task", "mixer", "step", "ms", "tokens/s", "x bare", "note"]
    print(format_table(header, rows))


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = bench.subcommands(subparsers).add_parser(
        "train",
        help="tokens/s of the training step against a bare PyTorch step, at the study's sizes",
        description=__doc__,
        epilog="examples:\n  globalconv bench train\n"
        "  globalconv bench train --tasks mqar --mixers hyena --variants harness,compiled\n"
        "  globalconv bench train --json runs/compare/bench-train.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated ({', '.join(TASKS)})")
    p.add_argument("--mixers", default=",".join(MIXERS), help="comma-separated mixers")
    p.add_argument(
        "--variants",
        default="harness",
        help=f"harness steps timed beside the bare one ({', '.join(VARIANTS)}; default harness)",
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
    p.set_defaults(func=run)


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise ConfigError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; available: {', '.join(known)}"
        )
    return names


def run(args: argparse.Namespace) -> int:
    task_names = _names(args.tasks, list(TASKS), "task(s)")
    mixer_names = _names(args.mixers, mixers.available(), "mixer(s)")
    variants = _names(args.variants, list(VARIANTS), "variant(s)")
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0 or args.amortise < 1:
        raise ConfigError("--threads, --repeats and --amortise must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    from globalconv.analysis.bench_mixers import device_name
    from globalconv.train.loop import task_data

    device = device_name("cpu")
    print(f"globalconv bench train: d=64, 2 layers, batch 64, {device}")
    records: list[dict[str, Any]] = []
    for task in task_names:
        causal = task_data(_config(task, "attention", []))[0].spec.causal
        for mixer in mixer_names:
            if causal and not mixers.get(mixer).supports_causal:
                records.append({"task": task, "mixer": mixer, "skipped": "cannot be causal"})
                continue
            records += measure_pair(
                task,
                mixer,
                variants,
                repeats=args.repeats,
                warmup=args.warmup,
                amortise=args.amortise,
            )
            if not args.quiet:
                print(f"  measured {task} {mixer}", flush=True)
    print_table(records, args.amortise)
    if args.json:
        # under "train", not "records": the report's speed curves read "records" as bench mixers'
        io.write_json(args.json, {"device": device, "benchmark": "train", "train": records})
    return 0
