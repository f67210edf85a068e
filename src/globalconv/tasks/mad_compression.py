"""Compression, as in MAD (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures", athms/mad-lab).

A random sequence of ``seq_len - 1`` tokens, then a compression token; the model must rebuild
the whole sequence from its encoding at the compression token alone. The model is the
``autoencoder`` architecture (``globalconv.models.autoencoder``): the mixers encode, one vector
is kept, and a per-position MLP decodes every position from it.

    input:     x1 x2 ... x_{L-1} COMPRESS
    target:    x1 x2 ... x_{L-1} COMPRESS       (every position scored, as in MAD)

The encoder runs causally, as MAD's layers do; the compression token at the end sees the
whole sequence either way.

Tokens: data 0 .. vocab_size-2, compression token vocab_size-1. Defaults are MAD's baseline
settings: vocabulary 16, length 32, 12,800 training and 1,280 test examples; MAD varies the
vocabulary 32-128, length 64-256 and training set 800-6,400. Left out: MAD's noise option
(its generator computes the noisy targets but returns the clean ones, and its benchmark keeps
noise off). The floor is the default one, the most frequent training target.

A validation split of 1,280 (MAD has none) is generated like test from its own stream,
so the training set keeps MAD's size (one of its difficulty settings) and is never carved.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from globalconv.tasks.base import Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class CompressionParams(SyntheticParams):
    num_train: int = Field(12_800, ge=1, description="training examples (MAD: 12,800)")
    num_test: int = Field(1_280, ge=1, description="test examples (MAD: 1,280)")
    num_valid: int = Field(
        1_280, ge=0, description="validation examples, made like test (MAD: none)"
    )
    vocab_size: int = Field(16, ge=2, description="data symbols + the compression token")
    seq_len: int = Field(32, ge=2, description="sequence length, compression token included")


def generate(p: CompressionParams, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len) int64: the targets are the inputs."""
    inputs = np.full((n, p.seq_len), p.vocab_size - 1, dtype=np.int64)
    inputs[:, :-1] = g.integers(0, p.vocab_size - 1, size=(n, p.seq_len - 1))
    return inputs, inputs.copy()


@register_task("mad_compression")
class MadCompression(Task):
    Params = CompressionParams
    description = "compression (MAD): rebuild the sequence from one token's encoding"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec(
            max_len=p.seq_len,
            num_outputs=p.vocab_size,
            head="token",
            causal=True,
            vocab_size=p.vocab_size,
            architecture="autoencoder",
        )

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(*generate(p, n, rng(p.seed, f"mad_compression/{name}")))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)
