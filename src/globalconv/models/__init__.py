"""Models: the Transformer with a pluggable token mixer."""

from globalconv.models.transformer import Block, CrossAttention, FeedForward, Transformer

__all__ = ["Block", "CrossAttention", "FeedForward", "Transformer"]
