"""Size a model to a reference model's parameter count or FLOPs per token.

A comparison of mixers is fair only at equal budget. With ``match.by=params`` (or ``flops``)
the run's model is resized, in width (d_model) or depth (n_layers), until its parameter count
(or forward FLOPs per token at the task's length, from the models' analytic ``flops(L)``) is as
close as possible to that of the reference: the same model config with the reference mixer
(``attention`` by default) at the configured size. The closest size must lie within
``match.tolerance`` (relative), otherwise the run stops with an error naming the closest size.

Widths that a model cannot take (e.g. not divisible by the number of heads) are skipped: a
candidate size counts only if the model builds. The resolved config records the reference's
size, so running a saved config again matches to the same target.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from globalconv.config import ConfigError, ModelConfig, RunConfig
from globalconv.models import build_model
from globalconv.tasks import TaskSpec

MAX_WIDTH = 1 << 16
MAX_DEPTH = 256


def measure(model_cfg: ModelConfig, spec: TaskSpec, by: str) -> float | None:
    """Parameters, or forward FLOPs per token at the task's length; None if it cannot build."""
    try:
        model = _build(model_cfg, spec)
    except ValueError:
        return None
    if by == "params":
        return float(sum(p.numel() for p in model.parameters()))
    L = spec.max_len
    return model.flops(L) / L


def _build(model_cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    # Built on the meta device: sizes and analytic FLOPs need no memory or initialisation.
    try:
        with torch.device("meta"):
            return build_model(model_cfg, spec)
    except (RuntimeError, NotImplementedError, TypeError):  # a module that needs real tensors
        return build_model(model_cfg, spec)


def _resized(model_cfg: ModelConfig, **sizes: Any) -> ModelConfig | None:
    try:
        return ModelConfig.model_validate({**model_cfg.model_dump(), **sizes})
    except ValueError:
        return None


def reference_config(cfg: RunConfig) -> ModelConfig:
    m = cfg.match
    update: dict[str, Any] = {
        "mixer": m.reference,
        "mixer_options": dict(m.reference_options),
        "d_model": m.reference_d_model or cfg.model.d_model,
        "n_layers": m.reference_n_layers or cfg.model.n_layers,
    }
    if "layers" in ModelConfig.model_fields:  # a per-layer layout would override the mixer
        update["layers"] = None
    try:
        return ModelConfig.model_validate({**cfg.model.model_dump(), **update})
    except ValueError as err:
        raise ConfigError(
            f"match: the reference model is not a valid model config: {err}"
        ) from None


def match(cfg: RunConfig, spec: TaskSpec) -> tuple[RunConfig, dict[str, Any] | None]:
    """(resolved config, record of what was matched); the config unchanged if matching is off."""
    m = cfg.match
    if m.by == "none":
        return cfg, None
    reference = reference_config(cfg)
    target = measure(reference, spec, m.by)
    if target is None:
        raise ConfigError(
            f"match: the reference model ({m.reference}, d_model={reference.d_model}, "
            f"n_layers={reference.n_layers}) cannot be built for task {cfg.task.name!r}"
        )
    key, limit = ("d_model", MAX_WIDTH) if m.dimension == "width" else ("n_layers", MAX_DEPTH)
    fixed = {"n_layers": reference.n_layers} if key == "d_model" else {"d_model": reference.d_model}

    def value_at(size: int) -> float | None:
        candidate = _resized(cfg.model, **fixed, **{key: size})
        return None if candidate is None else measure(candidate, spec, m.by)

    size, value = _closest(value_at, target, limit)
    if size is None:
        raise ConfigError(f"match: no {key} up to {limit} gives a model that builds")
    error = value / target - 1.0
    if abs(error) > m.tolerance:
        raise ConfigError(
            f"match: cannot bring {cfg.model.mixer} within {m.tolerance:.1%} of the reference's "
            f"{m.by} ({target:,.0f}) by {m.dimension}: closest is {key}={size} with {value:,.0f} "
            f"({error:+.1%}); raise match.tolerance or match by the other dimension"
        )
    resolved = cfg.model_copy(
        update={
            "model": _resized(cfg.model, **fixed, **{key: size}),
            "match": m.model_copy(
                update={
                    "reference_d_model": reference.d_model,
                    "reference_n_layers": reference.n_layers,
                }
            ),
        }
    )
    record = {
        "by": m.by,
        "reference": m.reference,
        "reference_options": dict(m.reference_options),
        "reference_size": {"d_model": reference.d_model, "n_layers": reference.n_layers},
        "reference_value": target,
        "dimension": m.dimension,
        "size": {"d_model": resolved.model.d_model, "n_layers": resolved.model.n_layers},
        "value": value,
        "relative_error": error,
        "tolerance": m.tolerance,
        "seq_len": spec.max_len,
    }
    return resolved, record


def _closest(value_at, target: float, limit: int) -> tuple[int | None, float]:
    """The size in [1, limit] whose value is closest to target, for values that grow with size.

    Sizes where ``value_at`` is None (the model does not build) are skipped: the search runs on
    f(s) = value at the first buildable size >= s, which grows with s as the values do.
    """
    cache: dict[int, float | None] = {}

    def value(s: int) -> float | None:
        if s not in cache:
            cache[s] = value_at(s)
        return cache[s]

    def buildable(s: int, step: int = 1) -> int | None:
        for x in range(s, s + 64 * step, step):  # e.g. the next width divisible by the heads
            if 1 <= x <= limit and value(x) is not None:
                return x
        return None

    def reaches(s: int) -> bool:
        x = buildable(s)
        return x is None or value(x) >= target

    lo = buildable(1)
    if lo is None:
        return None, 0.0
    hi = lo
    while not reaches(hi) and hi < limit:  # grow, then bisect for the first size that reaches
        hi = min(2 * hi, limit)
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid + 1
    above = buildable(lo)
    below = buildable((above or lo) - 1, -1)
    candidates = [(s, value(s)) for s in (above, below) if s is not None]
    if not candidates:
        return None, 0.0
    return min(candidates, key=lambda c: abs(c[1] - target))


__all__ = ["match", "measure", "reference_config"]
