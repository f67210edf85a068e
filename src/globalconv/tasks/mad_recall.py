"""In-context recall and noisy in-context recall, as in MAD (Poli et al. 2024, "Mechanistic
Design and Scaling of Hybrid Architectures", athms/mad-lab).

A sequence of ``seq_len // 2`` key-value pairs; keys are drawn with replacement from the key
vocabulary and each key keeps one value within the sequence (a fresh random map per sequence).
Every occurrence of a key after its first is a query: the model, reading causally, must give
the key's value at the key's position. The last pair repeats one of the keys shown before, so
every sequence asks at least once.

    sequence:  k3 v7 k1 v2 n n k3 v7 ... k1 v2        (n: noise, noisy variant only)
    inputs:    sequence[:-1]
    targets:   valid/test: v7 at the second k3, v2 at the final k1, -100 elsewhere
               train: the next token everywhere (a language model, as MAD trains)

Vocabulary (MAD's multi-query layout): keys [0, S/2), values [S/2, S), noise [S, vocab_size)
with S = vocab_size - noise_vocab_size. In the noisy variant each pair slot but one is, with
probability ``frac_noise``, two noise tokens instead: the model must learn to skip them.

Defaults are MAD's baseline settings: vocabulary 16 (noisy: 32, of which 16 noise), length
128 (127 input tokens after the shift), noise fraction 0.2 (noisy), 12,800 training and 1,280
test examples; MAD varies vocabulary 32-128, length 256-1024, training set 800-6,400 and noise
0.4-0.8 to make the task harder. MAD scores test accuracy at the query positions, as here.
Left out: MAD's single-query variant (a copy-prefix token before one final query). Differences:
MAD's generator can, in the rare sequence whose slots are all noise, fail to draw a probe; here
one slot before the probe is always a pair.

A validation split of 1,280 (MAD has none) is generated like test from its own stream,
so the training set keeps MAD's size (one of its difficulty settings) and is never carved.

The fair floor: answering a random one of the distinct values shown so far, computed exactly
on the test split: 1 / (S/2) once the context has shown every value, 0.213 at the defaults,
where the early queries have seen fewer.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Baseline, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class RecallParams(SyntheticParams):
    num_train: int = Field(12_800, ge=1, description="training examples (MAD: 12,800)")
    num_test: int = Field(1_280, ge=1, description="test examples (MAD: 1,280)")
    num_valid: int = Field(
        1_280, ge=0, description="validation examples, made like test (MAD: none)"
    )
    vocab_size: int = Field(16, ge=4, description="all tokens: keys, values and noise")
    seq_len: int = Field(128, ge=4, description="generated length (even); inputs are one shorter")
    noise_vocab_size: int = Field(0, ge=0, description="tokens reserved for noise")
    frac_noise: float = Field(0.0, ge=0.0, lt=1.0, description="share of pair slots that are noise")

    @model_validator(mode="after")
    def _fits(self) -> RecallParams:
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even (key-value pairs), got {self.seq_len}")
        if self.vocab_size - self.noise_vocab_size < 2:
            raise ValueError(
                f"vocab_size={self.vocab_size} leaves no keys and values beside "
                f"noise_vocab_size={self.noise_vocab_size}; raise vocab_size"
            )
        if self.frac_noise > 0 and self.noise_vocab_size == 0:
            raise ValueError("frac_noise > 0 needs noise_vocab_size > 0")
        return self


class NoisyRecallParams(RecallParams):
    vocab_size: int = Field(32, ge=4, description="all tokens: keys, values and noise")
    noise_vocab_size: int = Field(16, ge=0, description="tokens reserved for noise")
    frac_noise: float = Field(0.2, ge=0.0, lt=1.0, description="share of pair slots that are noise")


def generate(
    p: RecallParams, n: int, g: np.random.Generator, *, next_token: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len - 1); ``next_token``: training targets."""
    S = p.vocab_size - p.noise_vocab_size
    num_keys, P = S // 2, p.seq_len // 2  # P pair slots, the last one the probe
    rows = np.arange(n)[:, None]
    values_of = g.integers(num_keys, S, size=(n, num_keys))  # (n, keys): this sequence's map
    keys = g.integers(0, num_keys, size=(n, P))  # (n, P)
    noise = g.random((n, P)) < p.frac_noise
    noise[np.arange(n), g.integers(0, P - 1, size=n)] = False  # one pair before the probe
    noise[:, -1] = False
    # first[b, k]: the first pair slot before the probe that shows key k (P if none).
    first = np.full((n, num_keys), P)
    body = ~noise[:, :-1]  # (n, P-1)
    slot = np.broadcast_to(np.arange(P - 1), (n, P - 1))
    np.minimum.at(first, (np.broadcast_to(rows, (n, P - 1))[body], keys[:, :-1][body]), slot[body])
    # The probe asks a key shown before it, uniformly among the distinct ones.
    keys[:, -1] = np.argmax(g.random((n, num_keys)) * (first < P), axis=1)
    values = values_of[rows, keys]  # (n, P)
    query = ~noise & (first[rows, keys] < np.arange(P))  # (n, P): a key shown in an earlier pair
    seq = np.empty((n, 2 * P), dtype=np.int64)
    seq[:, 0::2], seq[:, 1::2] = keys, values
    noise_tokens = g.integers(S, p.vocab_size, size=(n, 2 * P)) if p.frac_noise > 0 else seq
    seq = np.where(np.repeat(noise, 2, axis=1), noise_tokens, seq)
    if next_token:
        return seq[:, :-1], seq[:, 1:]
    targets = np.full((n, 2 * P), IGNORE_INDEX, dtype=np.int64)
    targets[:, 1::2] = np.where(query, values, IGNORE_INDEX)
    return seq[:, :-1], targets[:, 1:]


def random_context_value_floor(split: Split, values: range) -> float:
    """Accuracy of answering, at each scored position, a random one of the distinct tokens
    from ``values`` that occurred up to there (the answer is always among them)."""
    x, y = split.inputs.numpy(), split.targets.numpy()
    is_value = (x >= values.start) & (x < values.stop)
    seen = np.zeros((x.shape[0], len(values)), dtype=bool)
    total = 0.0
    for t in range(x.shape[1]):
        seen[is_value[:, t], x[is_value[:, t], t] - values.start] = True
        scored = y[:, t] != IGNORE_INDEX
        total += float((1.0 / seen[scored].sum(axis=1)).sum())
    return total / max(int((y != IGNORE_INDEX).sum()), 1)


class _Recall(Task):
    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.vocab_size, p.seq_len - 1)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(
                *generate(p, n, rng(p.seed, f"{self.name}/{name}"), next_token=name == "train")
            )
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)

    def baseline(self, splits: dict[str, Split]) -> Baseline:
        S = self.params.vocab_size - self.params.noise_vocab_size
        values = range(S // 2, S)
        floor = random_context_value_floor(splits["test"], values)
        return Baseline(floor, f"a random one of the context's values (of {len(values)})")


@register_task("mad_recall")
class MadRecall(_Recall):
    Params = RecallParams
    description = "in-context recall (MAD): give each repeated key's value from the context"


@register_task("mad_noisy_recall")
class MadNoisyRecall(_Recall):
    Params = NoisyRecallParams
    description = "noisy in-context recall (MAD): recall while skipping noise-token pairs"
