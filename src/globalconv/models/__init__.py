"""Models: the Transformer and the encoder-decoder, each with a pluggable token mixer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from globalconv.config import ModelConfig
from globalconv.models.autoencoder import AutoEncoder
from globalconv.models.encoder_decoder import EncoderDecoder
from globalconv.models.transformer import Block, CrossAttention, FeedForward, Transformer

if TYPE_CHECKING:
    from globalconv.tasks import TaskSpec


def build_model(cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    """The model a task's spec asks for, with the configured mixers."""
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
