"""Multi-query associative recall (MQAR), as defined in Zoology (Arora et al. 2023).

A sequence starts with ``num_kv_pairs`` key-value pairs ``k1 v1 k2 v2 ...`` (distinct keys from
the lower half of the vocabulary, distinct values from the upper half), followed by a stretch in
which every key is queried once. Query slots are every other position after the pairs, chosen
without replacement with probability ∝ a·g^(a-1) for gap g (a = ``power_a``, so most queries
come soon after their pair and a few far away). Every other position holds a uniformly random
token from the whole vocabulary, as in Zoology.

    position:  0  1  2  3 ... 2P-1 | 2P ...                      L-1
    input:     k1 v1 k2 v2 ... vP  | noise k2 noise noise k1 ...
    target:    -100 everywhere except at a query key, whose target is its value

The model reads the sequence causally (a language model, as in Zoology) and is scored with
loss and accuracy at the query positions only: the target at a query is the value that followed
the same key in the prefix. Scoring the query position itself (rather than the next input
token) is Zoology's choice too: the token after a query is noise, so next-token loss elsewhere
would only measure how well the model predicts noise. Zoology finds that gated-convolution
models (H3, Hyena, RWKV) need a width growing with the sequence length to solve MQAR while
attention solves it at small width, which is why this task can separate the mixers.

Kept: the sequence layout, power-law gaps, random noise, query-only scoring. Left out: Zoology's
data-loader machinery and its multi-length training mixtures (train on one length here).
Defaults (vocabulary 64, length 32, 4 pairs, 10,000 / 1,000 examples) are small enough for a
2-layer, d=64 model on a CPU; Zoology's own runs use vocabulary 8192, lengths 64-512 with up to
64 pairs, and 100,000 training examples. Raise ``seq_len`` and ``num_kv_pairs`` together to
make recall harder.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Baseline, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class MqarParams(SyntheticParams):
    vocab_size: int = Field(64, ge=8, description="tokens; keys from the lower half, values upper")
    seq_len: int = Field(32, ge=8, description="sequence length L (even)")
    num_kv_pairs: int = Field(4, ge=1, description="key-value pairs per sequence, all queried")
    power_a: float = Field(0.01, gt=0, le=1, description="query gap g drawn with weight a*g^(a-1)")

    @model_validator(mode="after")
    def _fits(self) -> MqarParams:
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        if 4 * self.num_kv_pairs > self.seq_len:
            raise ValueError(
                f"num_kv_pairs={self.num_kv_pairs} needs seq_len >= {4 * self.num_kv_pairs} "
                "(pairs, then a query slot for each in the second half)"
            )
        if self.num_kv_pairs > self.vocab_size // 2 - 1:
            raise ValueError(
                f"num_kv_pairs={self.num_kv_pairs} distinct keys need vocab_size >= "
                f"{2 * self.num_kv_pairs + 2}"
            )
        return self


def distinct_draws(g: np.random.Generator, n: int, k: int, low: int, high: int) -> np.ndarray:
    """(n, k) integers from [low, high), distinct within each row (rows resampled until so)."""
    out = g.integers(low, high, size=(n, k))
    while True:
        s = np.sort(out, axis=1)
        bad = (s[:, 1:] == s[:, :-1]).any(axis=1)
        if not bad.any():
            return out
        out[bad] = g.integers(low, high, size=(int(bad.sum()), k))


def generate(p: MqarParams, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len) int64."""
    P, L, V = p.num_kv_pairs, p.seq_len, p.vocab_size
    keys = distinct_draws(g, n, P, 1, V // 2)  # (n, P); 0 is never a key, as in Zoology
    values = distinct_draws(g, n, P, V // 2, V)  # (n, P)
    inputs = g.integers(0, V, size=(n, L))  # noise everywhere, then overwrite
    inputs[:, 0 : 2 * P : 2] = keys
    inputs[:, 1 : 2 * P : 2] = values
    # Query slots g in [0, space), sampled without replacement with weights a·g^(a-1) by
    # the exponential race: the k smallest Exp(1)/w_g are a weighted draw without replacement.
    space = (L - 2 * P) // 2
    weights = p.power_a * np.arange(1, space + 1, dtype=np.float64) ** (p.power_a - 1)
    race = g.exponential(size=(n, space)) / weights
    gaps = np.argsort(race, axis=1)[:, :P]  # (n, P): query j asks keys[:, j]
    positions = 2 * P + 2 * gaps
    rows = np.arange(n)[:, None]
    inputs[rows, positions] = keys
    targets = np.full((n, L), IGNORE_INDEX, dtype=np.int64)
    targets[rows, positions] = values
    return inputs, targets


@register_task("mqar")
class Mqar(Task):
    Params = MqarParams
    description = "multi-query associative recall (Zoology): recall each queried key's value"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.vocab_size, p.seq_len)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(*generate(p, n, rng(p.seed, f"mqar/{name}")))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)

    def baseline(self, splits: dict[str, Split]) -> Baseline:
        # Copying a random one of the context's values needs no recall: the fair floor.
        P = self.params.num_kv_pairs
        return Baseline(1.0 / P, f"a random one of the {P} values in the context")
