"""Selective copying as MAD defines it (Poli et al. 2024, "Mechanistic Design and Scaling of
Hybrid Architectures", athms/mad-lab).

``num_tokens`` data tokens, in order, with blanks inserted among them; then a copy token and
``num_tokens`` blanks, at which the model must emit the data tokens in order.

    position:  0 ..................... C-1 | C    | C+1 ....... L-1
    input:     b d1 b b d2 ... b b dM      | COPY | b  b  ...  b
    target:    -100 ...                    | -100 | d1 d2 ...  dM

Causal (a language model); loss and accuracy on the last ``num_tokens`` positions only.

How it differs from ``selective_copy`` (Mamba's): every blank goes before one of the data
tokens, each of the M gaps equally likely (np.insert at uniform indices in MAD), so the last
data token always sits just before COPY and the gap sizes are multinomial, where Mamba's data
positions are a uniform subset of the context (noise after the last one too); the answer slots
are blanks after one COPY token rather than M marker tokens; data are drawn from vocab_size - 2
symbols, and ``seq_len`` counts the whole sequence. MAD draws the blanks' places from numpy's
global generator (so its data is not reproducible from its seed); here every draw comes from
the task's seed.

Tokens: data 0 .. vocab_size-3, blank vocab_size-2, copy vocab_size-1. Defaults are MAD's
baseline settings: vocabulary 16, length 256, 16 tokens to copy, 12,800 training and 1,280
test examples; MAD varies vocabulary 32-128, length 512-1024, tokens to copy 32-96 and the
training set 800-6,400.

A validation split of 1,280 (MAD has none) is generated like test from its own stream,
so the training set keeps MAD's size (one of its difficulty settings) and is never carved.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class MadSelectiveCopyParams(SyntheticParams):
    num_train: int = Field(12_800, ge=1, description="training examples (MAD: 12,800)")
    num_test: int = Field(1_280, ge=1, description="test examples (MAD: 1,280)")
    num_valid: int = Field(
        1_280, ge=0, description="validation examples, made like test (MAD: none)"
    )
    vocab_size: int = Field(16, ge=3, description="data symbols + blank + copy token")
    seq_len: int = Field(256, ge=4, description="whole sequence: context, copy token, answers")
    num_tokens: int = Field(16, ge=1, description="data tokens to copy, in order")

    @model_validator(mode="after")
    def _fits(self) -> MadSelectiveCopyParams:
        if self.seq_len <= 2 * self.num_tokens + 1:
            raise ValueError(
                f"seq_len={self.seq_len} must exceed 2 * num_tokens + 1 = "
                f"{2 * self.num_tokens + 1} (data, copy token, answer slots, and a blank)"
            )
        return self


def generate(
    p: MadSelectiveCopyParams, n: int, g: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len) int64."""
    M, L = p.num_tokens, p.seq_len
    blank, copy = p.vocab_size - 2, p.vocab_size - 1
    data = g.integers(0, p.vocab_size - 2, size=(n, M))  # (n, M)
    gaps = g.multinomial(L - 2 * M - 1, np.full(M, 1.0 / M), size=n)  # (n, M): blanks before each
    where = np.cumsum(gaps, axis=1) + np.arange(M)  # (n, M): each data token's position
    inputs = np.full((n, L), blank, dtype=np.int64)
    inputs[np.arange(n)[:, None], where] = data
    inputs[:, L - M - 1] = copy
    targets = np.full((n, L), IGNORE_INDEX, dtype=np.int64)
    targets[:, L - M :] = data
    return inputs, targets


@register_task("mad_selective_copy")
class MadSelectiveCopy(Task):
    Params = MadSelectiveCopyParams
    description = "selective copying (MAD): copy the data tokens among blanks, in order"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.vocab_size, p.seq_len)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(*generate(p, n, rng(p.seed, f"mad_selective_copy/{name}")))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)
