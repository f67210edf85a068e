"""Models: the Transformer with a pluggable token mixer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from globalconv.config import ModelConfig
from globalconv.models.transformer import Block, CrossAttention, FeedForward, Transformer

if TYPE_CHECKING:
    from globalconv.tasks import TaskSpec


def build_model(cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    """The model a task's spec asks for, with the configured mixers."""
    if spec.architecture == "encoder":
        return Transformer(cfg, **spec.model_kwargs())
    raise ValueError(f"architecture {spec.architecture!r} is not available yet")


__all__ = ["Block", "CrossAttention", "FeedForward", "Transformer", "build_model"]
