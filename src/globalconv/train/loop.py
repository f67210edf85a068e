"""The training loop: config -> task -> model -> optimiser -> run directory.

A run directory holds ``config.json`` (the resolved config), ``metrics.jsonl`` (one JSON object
per logged step and per evaluation), ``env.json`` (versions, threads, device), ``summary.json``
and ``model.safetensors``.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from globalconv import __version__, tasks
from globalconv.config import RunConfig, TrainConfig
from globalconv.models import build_model
from globalconv.tasks import IGNORE_INDEX, Split, TaskSpec
from globalconv.train import io


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay the matrices of linear layers only: not norms, biases, embeddings or kernels."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_matrix = isinstance(module, nn.Linear) and name == "weight"
            (decay if is_matrix else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    warmup = cfg.warmup_steps
    if cfg.schedule == "inverse_sqrt":  # Vaswani et al.: linear warmup, then 1/sqrt(step)
        s = step + 1
        return min(s / max(warmup, 1), math.sqrt(max(warmup, 1) / s))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(cfg.steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def loss_and_counts(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy, number of scored targets, number correct."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    scored = targets != IGNORE_INDEX
    correct = int(((logits.argmax(-1) == targets) & scored).sum())
    return loss, int(scored.sum()), correct


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, spec: TaskSpec, batch_size: int, device: str) -> dict:
    model.eval()
    total_loss, total, correct = 0.0, 0, 0
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)))
        model_inputs, targets = split.batch(index)
        logits = model(**to_device(model_inputs, device))
        loss, n, c = loss_and_counts(logits, targets.to(device))
        total_loss, total, correct = total_loss + float(loss), total + n, correct + c
    model.train()
    mean = total_loss / max(total, 1)
    metrics = {"loss": mean, "accuracy": correct / max(total, 1)}
    if spec.metric == "bits_per_token":
        metrics["bits_per_token"] = mean / math.log(2)
    return metrics


def environment() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {
        "globalconv": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": commit or None,
    }


def train(cfg: RunConfig, run_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Train one model as configured; write the run directory; return the summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tc = cfg.train
    torch.manual_seed(tc.seed)
    task = tasks.build(cfg.task.name, cfg.task.params)
    spec = task.spec
    splits = task.splits()
    model = build_model(cfg.model, spec).to(tc.device)
    io.write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
    io.write_json(run_dir / "env.json", environment())

    optimizer = torch.optim.AdamW(parameter_groups(model, tc.weight_decay), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc))
    train_split = splits["train"]
    order = torch.Generator().manual_seed(tc.seed)
    batches = _batches(len(train_split), tc.batch_size, order)
    log_every = max(1, tc.steps // 200)

    start = time.perf_counter()
    tokens_seen = 0
    with open(run_dir / "metrics.jsonl", "w") as log:
        bar = tqdm(
            range(tc.steps), desc=f"{cfg.model.mixer} on {cfg.task.name}", disable=not progress
        )
        for step in bar:
            model_inputs, targets = train_split.batch(next(batches))
            inputs = model_inputs["inputs"]
            logits = model(**to_device(model_inputs, tc.device))
            loss_sum, n, _ = loss_and_counts(logits, targets.to(tc.device))
            loss = loss_sum / max(n, 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_value = loss.item()
            tokens_seen += int(inputs.shape[0] * inputs.shape[1])
            if step % log_every == 0 or step == tc.steps - 1:
                elapsed = time.perf_counter() - start
                record = {
                    "step": step + 1,
                    "loss": loss_value,
                    "lr": scheduler.get_last_lr()[0],
                    "tokens_per_s": tokens_seen / max(elapsed, 1e-9),
                }
                log.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
            if tc.eval_every and (step + 1) % tc.eval_every == 0 and "valid" in splits:
                valid = evaluate(model, splits["valid"], spec, tc.eval_batch_size, tc.device)
                log.write(json.dumps({"step": step + 1, "valid": valid}) + "\n")
                log.flush()
    train_seconds = time.perf_counter() - start

    results = {
        name: evaluate(model, split, spec, tc.eval_batch_size, tc.device)
        for name, split in splits.items()
        if name != "train"
    }
    io.write_safetensors(run_dir / "model.safetensors", model.state_dict())
    L = spec.max_len
    summary = {
        "name": cfg.name or run_dir.name,
        "task": cfg.task.name,
        "task_info": task.info,
        "mixer": cfg.model.mixer,
        "metric": spec.metric,
        "params": model.num_params(),
        "flops_per_token": model.flops(L) / L,
        "seq_len": L,
        "steps": tc.steps,
        "seed": tc.seed,
        "train_seconds": train_seconds,
        "train_tokens_per_s": tokens_seen / max(train_seconds, 1e-9),
        "final_train_loss": loss_value,
        **{f"{name}_{key}": value for name, m in results.items() for key, value in m.items()},
    }
    io.write_json(run_dir / "summary.json", summary)
    return summary


def to_device(tensors: dict, device: str) -> dict:
    return {k: None if v is None else v.to(device) for k, v in tensors.items()}


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless shuffled mini-batches of indices (epochs reshuffled; the last partial batch kept)."""
    while True:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield perm[start : start + batch_size]
