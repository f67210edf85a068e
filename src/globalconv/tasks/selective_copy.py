"""Selective copying (Gu & Dao 2023, "Mamba", sections 3.1 and 4.1.1).

A context of ``context_len`` positions holds ``num_tokens`` data symbols at random positions
(distinct, kept in order) and a noise token everywhere else; then come ``num_tokens`` copy
markers, and at the j-th marker the model must emit the j-th data symbol.

    position:  0     1  2     ...  C-1   | C       C+1     ... C+M-1
    input:     noise d1 noise ...  d2 .. | MARKER  MARKER  ... MARKER
    target:    -100 in the context       | d1      d2      ... dM

Causal (a language model); loss and accuracy on the marker positions only. Where the data sit
varies from example to example, so a fixed-kernel convolution cannot copy by a shift (the
plain copying task, fixed spacing, is solved by one); Mamba uses the task to motivate
input-dependent (selective) mixing.

Tokens: noise 0, data symbols 1 .. num_symbols, marker num_symbols + 1. Mamba's setting is
context 4096, 16 data tokens, 16 symbols; the defaults here are CPU sized.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class SelectiveCopyParams(SyntheticParams):
    context_len: int = Field(64, ge=1, description="positions holding data and noise")
    num_tokens: int = Field(8, ge=1, description="data symbols to copy, in order")
    num_symbols: int = Field(8, ge=1, description="distinct data symbols")

    @model_validator(mode="after")
    def _fits(self) -> SelectiveCopyParams:
        if self.num_tokens > self.context_len:
            raise ValueError(
                f"num_tokens={self.num_tokens} do not fit in context_len={self.context_len}"
            )
        return self


def generate(
    p: SelectiveCopyParams, n: int, g: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, context_len + num_tokens) int64."""
    C, M = p.context_len, p.num_tokens
    data = g.integers(1, p.num_symbols + 1, size=(n, M))  # (n, M)
    # M distinct positions per row, sorted: the first M of a random permutation of the context.
    where = np.sort(np.argsort(g.random((n, C)), axis=1)[:, :M], axis=1)  # (n, M)
    inputs = np.zeros((n, C + M), dtype=np.int64)
    inputs[np.arange(n)[:, None], where] = data
    inputs[:, C:] = p.num_symbols + 1
    targets = np.full((n, C + M), IGNORE_INDEX, dtype=np.int64)
    targets[:, C:] = data
    return inputs, targets


@register_task("selective_copy")
class SelectiveCopy(Task):
    Params = SelectiveCopyParams
    description = "selective copying (Mamba): copy the non-noise tokens in order"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        vocab = p.num_symbols + 2
        return TaskSpec.next_token(vocab, p.context_len + p.num_tokens)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(*generate(p, n, rng(p.seed, f"selective_copy/{name}")))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)
