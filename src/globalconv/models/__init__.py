"""Models: the Transformer and the encoder-decoder, each with a pluggable token mixer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from globalconv.config import ModelConfig
from globalconv.core.errors import ConfigError
from globalconv.models.autoencoder import AutoEncoder
from globalconv.models.encoder_decoder import EncoderDecoder
from globalconv.models.transformer import Block, CrossAttention, FeedForward, Transformer

if TYPE_CHECKING:
    from globalconv.tasks import TaskSpec


# Parameters and buffers a model may hold (8 GiB in float32), checked on the meta device before
# anything is allocated, so that a width or an option of 10^8 is refused instead of exhausting
# memory.
MAX_MODEL_SIZE = 2**31


def build_model(cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    """The model a task's spec asks for, with the configured mixers; ``ValueError`` when it
    would hold more than ``MAX_MODEL_SIZE`` numbers."""
    with torch.device("meta"):  # shapes only: no memory, no random numbers drawn
        shape_only = _build(cfg, spec)
    size = sum(t.numel() for t in [*shape_only.parameters(), *shape_only.buffers()])
    if size > MAX_MODEL_SIZE:
        raise ConfigError(
            f"the model would hold {size:,} parameters and buffers, over the limit of "
            f"{MAX_MODEL_SIZE:,}; lower model.d_model, d_ff, n_layers or the mixer's sizes"
        )
    return _build(cfg, spec)


def _build(cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    if spec.architecture == "encoder":
        return Transformer(cfg, **spec.model_kwargs())
    if spec.architecture == "encoder_decoder":
        if spec.vocab_size is None or spec.head != "token":
            raise ValueError("an encoder_decoder task needs token inputs and a token head")
        return EncoderDecoder(
            cfg, max_len=spec.max_len, num_outputs=spec.num_outputs, vocab_size=spec.vocab_size
        )
    if spec.architecture == "autoencoder":
        if spec.vocab_size is None or spec.head != "token":
            raise ValueError("an autoencoder task needs token inputs and a token head")
        return AutoEncoder(
            cfg,
            max_len=spec.max_len,
            num_outputs=spec.num_outputs,
            vocab_size=spec.vocab_size,
            causal=spec.causal,
        )
    raise ValueError(f"unknown architecture {spec.architecture!r}")


__all__ = [
    "AutoEncoder",
    "Block",
    "CrossAttention",
    "EncoderDecoder",
    "FeedForward",
    "Transformer",
    "build_model",
]
