"""The length study of ``globalconv lengths``: a task whose rule and class balance do not depend
on the length (``motif_majority``), the models trained at one length and evaluated at others
(``MODELS``: each global-convolution kernel as trained and, where it can, resampled from the same
weights; attention with sinusoidal and with learned positions), and the table of their test
accuracies. What the study measures and why: ``globalconv lengths --help``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from globalconv.config import ModelConfig, TrainConfig
from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.core.stats import mean_std
from globalconv.core.tables import format_table
from globalconv.models import Transformer
from globalconv.tasks import Split

VOCAB = 8

# ---------------------------------------------------------------------------------------------
# the task


def motif_majority(
    n_examples: int, length: int, seed: int, *, vocab: int = 8, density: float = 0.1
) -> Split:
    """Sequences of ``length`` tokens; label 1 iff "a b" (0 1) occurs more often than "b a" (1 0).

    round(density * length) motifs (at least one), each motif followed by a background token
    (2..vocab-1), the rest background; sequences are circular-safe (no motif across the end).
    """
    motifs = max(1, round(density * length))
    if vocab < 3 or 3 * motifs > length:
        raise ConfigError(
            f"motif_majority needs vocab >= 3 and 3 * motifs <= length, got vocab={vocab}, "
            f"length={length}, {motifs} motifs; lower the density or raise the length"
        )
    g = torch.Generator().manual_seed(seed)
    inputs = torch.empty(n_examples, length, dtype=torch.long)
    labels = torch.randint(0, 2, (n_examples,), generator=g)
    singles = length - 3 * motifs
    for i in range(n_examples):
        winners = int(torch.randint(motifs // 2 + 1, motifs + 1, (1,), generator=g))
        n_ab = winners if labels[i] else motifs - winners
        kinds = torch.tensor([1] * n_ab + [0] * (motifs - n_ab))[
            torch.randperm(motifs, generator=g)
        ]
        is_motif = torch.zeros(motifs + singles, dtype=torch.bool)
        is_motif[torch.randperm(motifs + singles, generator=g)[:motifs]] = True
        background = torch.randint(2, vocab, (length,), generator=g)
        row, k = [], 0
        for motif in is_motif.tolist():
            if motif:
                row += [0, 1] if kinds[k] else [1, 0]
                k += 1
            row.append(-1)  # a background slot
        row = torch.tensor(row)
        inputs[i] = torch.where(row < 0, background, row)
    return Split(inputs, labels)


# ---------------------------------------------------------------------------------------------
# the models


@dataclass
class Entry:
    """One trained model: its config, and the ways it is evaluated (label -> mixer overrides)."""

    config: dict[str, Any]
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _conv(kernel: str, resample_label: str | None) -> Entry:
    config = {"mixer": "global_conv", "mixer_options": {"kernel": kernel}}
    evaluations = {kernel: {}}
    if resample_label:
        evaluations[resample_label] = {"resample": True}
    return Entry(config, evaluations)


MODELS: dict[str, Entry] = {
    "explicit": _conv("explicit", "explicit, resampled"),
    "frequency": _conv("frequency", "frequency, resampled"),
    "multiscale": _conv("multiscale", "multiscale, resampled"),
    "implicit": _conv("implicit", None),
    "attention-sinusoidal": Entry(
        {"mixer": "attention", "positions": "sinusoidal"}, {"attention, sinusoidal": {}}
    ),
    "attention-learned": Entry(
        {"mixer": "attention", "positions": "learned"}, {"attention, learned": {}}
    ),
}


def build(
    entry_config: dict[str, Any], overrides: dict[str, Any], d_model: int, n_layers: int, L: int
) -> Transformer:
    options = {**entry_config.get("mixer_options", {}), **overrides}
    cfg = ModelConfig(
        **{**entry_config, "mixer_options": options},
        d_model=d_model,
        n_layers=n_layers,
        dropout=0.0,
    )
    return Transformer(cfg, max_len=L, num_outputs=2, vocab_size=VOCAB)


# ---------------------------------------------------------------------------------------------
# training and evaluation


def fit(model: nn.Module, split: Split, tc: TrainConfig) -> float:
    """Train in place on ``split`` (full-length sequences); return the last loss."""
    from globalconv.train.optim import lr_factor, parameter_groups
    from globalconv.train.scoring import loss_and_counts

    optimizer = torch.optim.AdamW(parameter_groups(model, tc.weight_decay), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, tc))
    order = torch.Generator().manual_seed(tc.seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(tc.steps):
        index = torch.randint(0, len(split), (tc.batch_size,), generator=order)
        logits = model(split.inputs[index])
        loss_sum, n, _ = loss_and_counts(logits, split.targets[index])
        loss = loss_sum / n
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        scheduler.step()
    return loss.item()


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 250) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(split), batch_size):
        logits = model(split.inputs[start : start + batch_size])
        correct += int((logits.argmax(-1) == split.targets[start : start + batch_size]).sum())
    return correct / len(split)


def run(
    *,
    models: list[str],
    train_len: int = 64,
    factors: list[float] = (0.5, 2.0, 4.0),
    seeds: list[int] = (0,),
    steps: int = 600,
    d_model: int = 32,
    n_layers: int = 2,
    n_train: int = 4000,
    n_test: int = 500,
    lr: float = 3e-3,
    progress: bool = True,
) -> dict[str, Any]:
    """Train each model at train_len per seed, evaluate at each factor; return the results."""
    unknown = [m for m in models if m not in MODELS]
    if not models or unknown:
        raise ConfigError(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
            f"available: {', '.join(MODELS)}"
        )
    lengths = [train_len] + [max(1, round(f * train_len)) for f in factors]
    tests = {n: motif_majority(n_test, n, seed=10_000 + n, vocab=VOCAB) for n in lengths}
    rows: dict[str, dict[int, list[float | None]]] = {}
    seconds: dict[str, float] = {}
    params: dict[str, int] = {}
    for seed in seeds:
        train = motif_majority(n_train, train_len, seed=seed, vocab=VOCAB)
        tc = TrainConfig(
            steps=steps,
            batch_size=32,
            lr=lr,
            warmup_steps=min(50, steps // 10),
            weight_decay=0.01,
            seed=seed,
        )
        for name in models:
            entry = MODELS[name]
            torch.manual_seed(seed)
            model = build(entry.config, {}, d_model, n_layers, train_len)
            start = time.perf_counter()
            loss = fit(model, train, tc)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            params[name] = sum(p.numel() for p in model.parameters())
            for label, overrides in entry.evaluations.items():
                evaluated = build(entry.config, overrides, d_model, n_layers, train_len)
                evaluated.load_state_dict(model.state_dict())
                scores = rows.setdefault(label, {n: [] for n in lengths})
                for n in lengths:
                    try:
                        scores[n].append(accuracy(evaluated, tests[n]))
                    except SequenceTooLongError:  # too long for this model: n/a in the table
                        scores[n].append(None)
            if progress:
                print(f"  seed {seed} {name}: final train loss {loss:.3f}", flush=True)
    return {
        "train_len": train_len,
        "lengths": lengths,
        "seeds": list(seeds),
        "steps": steps,
        "lr": lr,
        "accuracy": {label: {str(n): v for n, v in s.items()} for label, s in rows.items()},
        "train_seconds": seconds,
        "params": params,
    }


def table(results: dict[str, Any]) -> str:
    """Mean test accuracy over seeds (± std when several), one row per model and evaluation."""
    L = results["train_len"]
    lengths = results["lengths"]
    header = ["model"] + [f"{n} ({n / L:g}x)" for n in lengths]
    lines = []
    for label, scores in results["accuracy"].items():
        cells = [label]
        for n in lengths:
            values = scores[str(n)]
            if any(v is None for v in values):
                cells.append("n/a")
                continue
            mean, std = mean_std(values)
            cells.append(f"{mean:.3f}" if std is None else f"{mean:.3f}±{std:.3f}")
        lines.append(cells)
    return format_table(header, lines, left={0})


__all__ = ["MODELS", "motif_majority", "run", "table"]
