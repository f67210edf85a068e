"""The measurements of ``globalconv bench train``: tokens per second of the harness's own training
step (``_Run.train_step``, what ``globalconv train`` runs) beside a bare hand-written PyTorch step
of the same model, at the study's sizes (``TASKS``, ``MODEL``), with the variants of
``VARIANTS``; timed in interleaved rounds (``analysis.bench``). What each step does:
``globalconv bench train --help``.
"""

from __future__ import annotations

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
        run.train_step(run.progress.step, stop)
        run.progress.step += 1

    return step, tokens


def bare_step(cfg: configuration.RunConfig) -> Callable[[], None]:
    """Forward, cross-entropy at every position, backward, AdamW (torch's defaults): the same
    model with ``torch.nn.Dropout``, nothing else."""
    from globalconv.models import build_model
    from globalconv.models.dropout import Dropout
    from globalconv.train.data import task_data

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


def measure(
    task_names: list[str],
    mixer_names: list[str],
    variants: list[str],
    *,
    repeats: int,
    warmup: int,
    amortise: int,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """``measure_pair`` for every task and mixer, and a record saying so for a mixer that cannot
    run on a causal task."""
    from globalconv.train.data import task_data

    records: list[dict[str, Any]] = []
    for task in task_names:
        causal = task_data(_config(task, "attention", []))[0].spec.causal
        for mixer in mixer_names:
            if causal and not mixers.get(mixer).supports_causal:
                records.append({"task": task, "mixer": mixer, "skipped": "cannot be causal"})
                continue
            records += measure_pair(
                task, mixer, variants, repeats=repeats, warmup=warmup, amortise=amortise
            )
            if progress:
                print(f"  measured {task} {mixer}", flush=True)
    return records


__all__ = [
    "TASKS",
    "VARIANTS",
    "bare_step",
    "harness_step",
    "measure",
    "measure_pair",
    "print_table",
]
