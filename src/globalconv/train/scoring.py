"""What a batch scores: the forward pass at the scored positions, the summed loss and counts,
and evaluation on a split (the numbers training logs and the summary reports).

Only the targets that are not ``IGNORE_INDEX`` are scored; a per-position model runs its head
there alone (``scored_positions``), which gives the numbers of computing every position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from globalconv.core.errors import ConfigError
from globalconv.tasks import IGNORE_INDEX, Split, TaskSpec
from globalconv.train import distributed


def loss_and_counts(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy, number of scored targets, number correct."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    scored = targets != IGNORE_INDEX
    correct = int(((logits.argmax(-1) == targets) & scored).sum())
    return loss, int(scored.sum()), correct


def scored_positions(targets: torch.Tensor) -> torch.Tensor | None:
    """Flat indices (into B*L) of the scored targets of a per-position batch; None when every
    position is scored or targets are per sequence. The model's head then runs only there."""
    if targets.dim() < 2:
        return None
    index = (targets.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)  # (S,)
    return None if len(index) == targets.numel() else index


def forward_scored(
    model: nn.Module, model_inputs: dict, targets: torch.Tensor, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (S, C) and targets (S,) at the scored positions (all of them: (B*L, C))."""
    positions = scored_positions(targets)
    inputs = to_device(model_inputs, device)
    flat = targets.reshape(-1)
    if positions is None:
        logits = model(**inputs)
    else:
        flat = flat[positions]
        logits = model(**inputs, positions=positions.to(device))
    return logits.reshape(-1, logits.shape[-1]), flat.to(device)


def autocast(device: str, precision: str) -> torch.autocast:
    """bf16 autocast on the device's kind when ``precision`` is bf16; a no-op otherwise."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_device(tensors: dict, device: str) -> dict:
    return {k: None if v is None else v.to(device) for k, v in tensors.items()}


def check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device={device} but CUDA is not available to torch {torch.__version__}; "
            "use train.device=cpu"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    spec: TaskSpec,
    batch_size: int,
    device: str,
    *,
    dist: distributed.Dist | None = None,
    precision: str = "fp32",
) -> dict[str, float]:
    """Loss (nats per scored target), accuracy (and bits per token for LM tasks) on a split.

    Under torchrun each process scores a contiguous share of the split; the sums are reduced.
    """
    dist = dist or distributed.Dist()
    was_training = model.training
    model.eval()
    n = len(split)
    share = math.ceil(n / dist.world_size)
    lo, hi = dist.rank * share, min(n, (dist.rank + 1) * share)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss, scored, correct
    for start in range(lo, hi, batch_size):
        index = torch.arange(start, min(start + batch_size, hi))
        model_inputs, targets = split.batch(index)
        with autocast(device, precision):
            logits, flat = forward_scored(model, model_inputs, targets, device)
        loss, scored, correct = loss_and_counts(logits, flat)
        totals += torch.tensor([float(loss), scored, correct], dtype=torch.float64, device=device)
    loss_sum, scored, correct = dist.all_sum(totals).tolist()
    model.train(was_training)
    mean = loss_sum / max(scored, 1)
    metrics = {"loss": mean, "accuracy": correct / max(scored, 1)}
    if spec.metric == "bits_per_token":
        metrics["bits_per_token"] = mean / math.log(2)
    return metrics


__all__ = [
    "autocast",
    "check_device",
    "evaluate",
    "forward_scored",
    "loss_and_counts",
    "scored_positions",
    "to_device",
]
