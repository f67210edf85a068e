"""Memorization, as in MAD (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures", athms/mad-lab).

One fixed key-to-value map, shared by every example of every split (drawn from the task's
seed): the facts to learn. A sequence is ``seq_len // 2`` keys, drawn with replacement, each
followed by an insert token at which the model must give the key's value. Nothing in the
context helps: the map must be stored in the weights.

    input:     k7 INS k2 INS k7 INS ...
    target:    -100 v(k7) -100 v(k2) -100 v(k7) ...

Causal (a language model); loss and accuracy at the insert tokens only.

Vocabulary: keys [0, S/2), values [S/2, S), insert token S = vocab_size - 1; the map sends
each key to a distinct value. Defaults are MAD's baseline settings: vocabulary 256 (127 keys),
length 32 (16 keys per example), 256 training and 1,280 test examples; MAD varies the
vocabulary 512-8192 with the same 256 training examples, so at its larger sizes some keys
never occur in training and no model can answer them. Left out: MAD's noise option (off in
MAD's benchmark).

A validation split of 1,280 (MAD has none) is generated like test from its own stream,
so the training set keeps MAD's size (one of its difficulty settings) and is never carved.

Leaks: train and test share the map by design, so every test fact is (almost surely) a
training fact, and that is what is measured. Removing training sequences equal to a test
sequence would remove nothing a model could not score by knowing the map anyway, and at short
lengths (a few keys per sequence) it would remove most of the training set; so this task,
alone among the generated ones, keeps its training split whole.

The fair floor: always answering the most frequent training value (the default floor).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, rng, sizes, split_numpy


class MemorizationParams(SyntheticParams):
    num_train: int = Field(256, ge=1, description="training examples (MAD: 256)")
    num_test: int = Field(1_280, ge=1, description="test examples (MAD: 1,280)")
    num_valid: int = Field(
        1_280, ge=0, description="validation examples, made like test (MAD: none)"
    )
    vocab_size: int = Field(256, ge=3, description="keys, values and the insert token")
    seq_len: int = Field(32, ge=2, description="sequence length; seq_len // 2 keys")


def fact_map(p: MemorizationParams) -> np.ndarray:
    """(num_keys,) the value of each key: distinct values, drawn from the seed alone."""
    S = p.vocab_size - 1
    return rng(p.seed, "mad_memorization/map").permutation(np.arange(S // 2, S))[: S // 2]


def generate(
    p: MemorizationParams, n: int, g: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, 2 * (seq_len // 2)) int64."""
    value_of = fact_map(p)
    keys = g.integers(0, len(value_of), size=(n, p.seq_len // 2))  # (n, P)
    inputs = np.full((n, 2 * keys.shape[1]), p.vocab_size - 1, dtype=np.int64)
    inputs[:, 0::2] = keys
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, 1::2] = value_of[keys]
    return inputs, targets


@register_task("mad_memorization")
class MadMemorization(Task):
    Params = MemorizationParams
    description = "memorization (MAD): learn one fixed key-value map shared by all examples"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.vocab_size, 2 * (p.seq_len // 2))

    def splits(self) -> dict[str, Split]:
        p = self.params
        return {  # no drop_leaks: the shared map is the point (module docstring)
            name: split_numpy(*generate(p, n, rng(p.seed, f"mad_memorization/{name}")))
            for name, n in sizes(p).items()
        }
