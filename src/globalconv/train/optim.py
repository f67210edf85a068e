"""AdamW with decoupled weight decay, parameter groups from optimiser hints, and schedules.

Weight decay (Loshchilov & Hutter 2019, decoupled) applies by default to the weight matrices of
linear layers only: norms, biases, embeddings, positions and other vectors are not decayed, and
neither are convolution kernels (parameters with a name component ``kernel``) unless
``train.kernel_weight_decay`` is set.

Any parameter can carry optimiser hints that override those defaults, set by the module that
owns it (a mixer, a kernel parameterisation)::

    from globalconv.train import set_optim_hints
    set_optim_hints(self.kernel, lr=1e-3, weight_decay=0.0)   # its own lr and no decay
    set_optim_hints(self.decay, lr_scale=0.1)                  # a tenth of the run's lr

Hints live on the parameter as ``param._optim`` (a dict with keys ``lr``, ``lr_scale``,
``weight_decay``). The trainer puts parameters with equal (lr, weight decay) in one group; the
schedule scales every group's lr by the same factor, so a hinted ``lr`` is that parameter's peak.

Schedules (factor of the peak lr at 0-based step s, warmup W, total T):
    cosine        (s+1)/W during warmup, then r + (1-r)/2 (1 + cos(pi (s-W)/(T-W)))  (floor r)
    constant      (s+1)/W during warmup, then 1
    inverse_sqrt  min((s+1)/W, sqrt(W/(s+1)))   (Vaswani et al. 2017, normalised to peak 1 at W)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from globalconv.config import TrainConfig

HINTS_ATTR = "_optim"
HINT_KEYS = ("lr", "lr_scale", "weight_decay")


def set_optim_hints(
    param: nn.Parameter,
    *,
    lr: float | None = None,
    lr_scale: float | None = None,
    weight_decay: float | None = None,
) -> nn.Parameter:
    """Attach optimiser hints to ``param`` (returned, for use in ``__init__`` one-liners).

    lr: this parameter's own peak learning rate; lr_scale: a multiple of the run's lr (give one
    of the two); weight_decay: its own decoupled weight decay.
    """
    hints = {
        k: v
        for k, v in (("lr", lr), ("lr_scale", lr_scale), ("weight_decay", weight_decay))
        if v is not None
    }
    _check_hints(hints, "set_optim_hints")
    setattr(param, HINTS_ATTR, {**get_optim_hints(param), **hints})
    return param


def get_optim_hints(param: nn.Parameter) -> dict[str, float]:
    return dict(getattr(param, HINTS_ATTR, None) or {})


def _check_hints(hints: dict[str, Any], where: str) -> None:
    unknown = sorted(set(hints) - set(HINT_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown optimiser hint(s) {unknown}; allowed: {HINT_KEYS}")
    if "lr" in hints and "lr_scale" in hints:
        raise ValueError(f"{where}: give lr or lr_scale, not both")
    for key, value in hints.items():
        if not isinstance(value, int | float) or value < 0 or (key != "weight_decay" and not value):
            raise ValueError(f"{where}: hint {key}={value!r} must be a positive number")


def _is_kernel(name: str) -> bool:
    return "kernel" in name.split(".")


def parameter_groups(
    model: nn.Module,
    weight_decay: float,
    *,
    lr: float | None = None,
    kernel_weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: one per distinct (lr, weight decay), with a readable name.

    lr: the run's peak lr. Without it, groups leave ``lr`` to the optimiser's default except
    where a hint sets it (an ``lr_scale`` hint then needs ``lr``). Each group also carries
    ``names`` (its parameters' names) and, with a known lr, ``base_lr`` (its peak, which
    ``set_lr`` scales); the optimiser ignores both.
    """
    matrices = {id(module.weight) for module in model.modules() if isinstance(module, nn.Linear)}
    groups: dict[tuple[float, float, str], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if _is_kernel(name):
            kind, decay = "kernel", kernel_weight_decay
        elif id(p) in matrices:
            kind, decay = "decay", weight_decay
        else:
            kind, decay = "no_decay", 0.0
        group_lr = lr
        hints = get_optim_hints(p)
        if hints:
            _check_hints(hints, f"parameter {name}")
            kind = "hinted"
            decay = hints.get("weight_decay", decay)
            if "lr" in hints:
                group_lr = hints["lr"]
            elif "lr_scale" in hints:
                if lr is None:
                    raise ValueError(f"parameter {name} has an lr_scale hint: pass lr=")
                group_lr = lr * hints["lr_scale"]
        group = groups.setdefault(
            (group_lr, decay, kind), {"params": [], "names": [], "weight_decay": decay}
        )
        if group_lr is not None:
            group["lr"] = group["base_lr"] = group_lr
        group["params"].append(p)
        group["names"].append(name)
    out = []
    for (group_lr, decay, kind), group in groups.items():
        shown = "" if group_lr is None else f"lr={group_lr:g},"
        group["name"] = kind if kind != "hinted" else f"hinted({shown}wd={decay:g})"
        out.append(group)
    return out


def build_optimizer(model: nn.Module, tc: TrainConfig) -> torch.optim.AdamW:
    groups = parameter_groups(
        model, tc.weight_decay, lr=tc.lr, kernel_weight_decay=tc.kernel_weight_decay
    )
    # one fused kernel for every tensor: torch's default on CPU is a Python loop over tensors
    fused = all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in model.parameters()
    )
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tc.betas, eps=tc.eps, fused=fused)


def describe_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """What each parameter group is, for the run's summary."""
    return [
        {
            "name": g.get("name", str(i)),
            "lr": g["base_lr"],
            "weight_decay": g["weight_decay"],
            "tensors": len(g["params"]),
            "params": sum(p.numel() for p in g["params"]),
        }
        for i, g in enumerate(optimizer.param_groups)
    ]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based)."""
    warmup = cfg.warmup_steps
    if cfg.schedule == "inverse_sqrt":
        s = step + 1
        return min(s / max(warmup, 1), math.sqrt(max(warmup, 1) / s))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = min((step - warmup) / max(cfg.steps - warmup, 1), 1.0)
    floor = cfg.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


__all__ = [
    "build_optimizer",
    "describe_groups",
    "get_optim_hints",
    "lr_factor",
    "parameter_groups",
    "set_lr",
    "set_optim_hints",
]
