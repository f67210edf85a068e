"""Induction heads: copy the token that followed the previous occurrence of the current token.

The synthetic form of H3 (Fu et al. 2023, "Hungry Hungry Hippos") and Hyena (Poli et al. 2023),
after the induction heads of Olsson et al. (2022): a sequence of uniformly random symbols holds
one special trigger token at a random position p in [0, L-3], followed by the answer symbol; the
sequence ends with the trigger again, and the target at that last position is the answer.

    position:  0  1  ...  p        p+1     ...  L-1
    input:     s  s  ...  TRIGGER  answer  ...  TRIGGER
    target:    -100 everywhere except at L-1, whose target is ``answer``

Causal (a language model); loss and accuracy at the last position only. The trigger occurs
nowhere else, so the rule is exact and a hand-written solver scores 100%. Because p is random,
no fixed shift of the input finds the answer: a mixer has to locate the trigger from content.

Tokens: symbols 0 .. num_symbols-1, trigger = num_symbols (vocabulary num_symbols + 1).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class InductionParams(SyntheticParams):
    num_symbols: int = Field(16, ge=2, description="distinct symbols (plus one trigger token)")
    seq_len: int = Field(64, ge=4, description="sequence length L, trigger included")


def generate(p: InductionParams, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len) int64."""
    L, trigger = p.seq_len, p.num_symbols
    inputs = g.integers(0, p.num_symbols, size=(n, L))  # (n, L) random symbols
    rows = np.arange(n)
    first = g.integers(0, L - 2, size=n)  # p in [0, L-3]: the answer lands before the end
    inputs[rows, first] = trigger
    inputs[:, -1] = trigger
    targets = np.full((n, L), IGNORE_INDEX, dtype=np.int64)
    targets[:, -1] = inputs[rows, first + 1]
    return inputs, targets


@register_task("induction")
class Induction(Task):
    Params = InductionParams
    description = "induction head (H3/Hyena): after the trigger recurs, emit what followed it"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.num_symbols + 1, p.seq_len)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(*generate(p, n, rng(p.seed, f"induction/{name}")))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)
