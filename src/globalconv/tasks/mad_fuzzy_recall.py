"""Fuzzy in-context recall, as in MAD (Poli et al. 2024, "Mechanistic Design and Scaling of
Hybrid Architectures", athms/mad-lab).

In-context recall where keys and values are motifs: runs of 1..``k_motif_size`` distinct key
tokens and 1..``v_motif_size`` distinct value tokens, so the model must group adjacent tokens
into one unit before it can look them up. Within a sequence each key motif keeps one value
motif; a key motif that occurred before is a query, and the model must then produce its whole
value motif, token by token. The sequence ends with a repeat of one key-value pair placed
earlier (the probe), and is left-padded to ``seq_len``.

    sequence:  PAD PAD | k1 k4 v9 | k2 v8 v11 | k1 k4 v9 | ... | k2 v8 v11
    inputs:    sequence[:-1]      (generated one longer, so inputs have seq_len tokens)
    targets:   valid/test: the value tokens of repeated keys (v9 after the second k1 k4, ...)
               train: the next token everywhere (a language model, as MAD trains)

Training keys have random sizes; valid/test keys always have ``k_motif_size`` tokens (MAD
prompts at the largest size), so key boundaries are unambiguous where it scores. Key and value
vocabularies are disjoint, so a key is a maximal run of key tokens and its value the run after.

Vocabulary (MAD's multi-query layout): keys [0, S/2), values [S/2, S), padding S, with
S = vocab_size - 1. Defaults are MAD's baseline settings: vocabulary 16, length 128, motifs
of up to 3 tokens, 12,800 training and 1,280 test examples; MAD varies vocabulary 32-128,
length 256-1024 and training set 800-6,400. Left out: MAD's single-query variant and
its noise option (off in MAD's benchmark). Difference: MAD places the probe pair at a random
token offset and, when the sequence fills before reaching it, can end on a query whose key was
never shown; here the probe pair is placed at a random slot among the pairs, so it always is.

A validation split of 1,280 (MAD has none) is generated like test from its own stream,
so the training set keeps MAD's size (one of its difficulty settings) and is never carved.

The fair floor: emitting a random one of the distinct value motifs shown before, scored per
token, computed exactly on the test split.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Baseline, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class FuzzyRecallParams(SyntheticParams):
    num_train: int = Field(12_800, ge=1, description="training examples (MAD: 12,800)")
    num_test: int = Field(1_280, ge=1, description="test examples (MAD: 1,280)")
    num_valid: int = Field(
        1_280, ge=0, description="validation examples, made like test (MAD: none)"
    )
    vocab_size: int = Field(16, ge=4, description="all tokens: keys, values and padding")
    seq_len: int = Field(128, ge=4, description="input length, left-padded")
    k_motif_size: int = Field(3, ge=1, description="most tokens in a key (valid/test: exactly)")
    v_motif_size: int = Field(3, ge=1, description="most tokens in a value")

    @model_validator(mode="after")
    def _fits(self) -> FuzzyRecallParams:
        S = self.vocab_size - 1
        if S // 2 < self.k_motif_size or S - S // 2 < self.v_motif_size:
            raise ValueError(
                f"vocab_size={self.vocab_size} has {S // 2} key and {S - S // 2} value tokens, "
                f"too few for motifs of {self.k_motif_size} and {self.v_motif_size} distinct "
                "tokens; raise vocab_size or lower the motif sizes"
            )
        if self.seq_len < 2 * (self.k_motif_size + self.v_motif_size):
            raise ValueError(
                f"seq_len={self.seq_len} cannot hold a pair and its repeat; it must be at least "
                f"{2 * (self.k_motif_size + self.v_motif_size)}"
            )
        return self


def distinct_tokens(g: np.random.Generator, rows: int, k: int, low: int, high: int) -> np.ndarray:
    """(rows, k) tokens from [low, high), distinct within a row, in random order: the j-th is
    uniform over the high - low - j tokens not yet taken."""
    out = np.empty((rows, k), dtype=np.int64)
    for j in range(k):
        pick = g.integers(0, high - low - j, size=rows)
        for taken in np.sort(out[:, :j], axis=1).T:  # skip the taken ones, smallest first
            pick += pick >= taken
        out[:, j] = pick
    return out + low


def generate(
    p: FuzzyRecallParams, n: int, g: np.random.Generator, *, held_out: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (n, seq_len); ``held_out``: valid/test keys and targets."""
    S, K, V = p.vocab_size - 1, p.k_motif_size, p.v_motif_size
    pad, num_key_tokens = S, S // 2
    M = p.seq_len // 2 + 1  # more pair slots than a sequence can hold (each has >= 2 tokens)
    key_tokens = distinct_tokens(g, n * (M + 1), K, 0, num_key_tokens).reshape(n, M + 1, K)
    value_tokens = distinct_tokens(g, n * (M + 1), V, num_key_tokens, S).reshape(n, M + 1, V)
    key_sizes = np.full((n, M + 1), K) if held_out else g.integers(1, K + 1, size=(n, M + 1))
    value_sizes = g.integers(1, V + 1, size=(n, M + 1))
    where = g.random(n)  # where among the pairs the probe goes
    inputs = np.full((n, p.seq_len + 1), pad, dtype=np.int64)
    labels = np.full((n, p.seq_len + 1), IGNORE_INDEX, dtype=np.int64)
    for b in range(n):  # Python lists: hashing tuples of numpy integers is slow
        keys, values = key_tokens[b].tolist(), value_tokens[b].tolist()
        key_size, value_size = key_sizes[b].tolist(), value_sizes[b].tolist()
        # slot M holds the probe; pairs 0..M-1 fill the sequence until it is full
        probe = tuple(keys[M][: key_size[M]])
        value_of = {probe: tuple(values[M][: value_size[M]])}
        budget = p.seq_len - 2 * (len(probe) + len(value_of[probe])) - K - V
        pairs, length = [], 0
        for s in range(M):
            if length >= budget:
                break
            key = tuple(keys[s][: key_size[s]])
            value = value_of.setdefault(key, tuple(values[s][: value_size[s]]))
            pairs.append(key)
            length += len(key) + len(value)
        pairs.insert(int(where[b] * (len(pairs) + 1)), probe)
        pairs.append(probe)  # the final query
        row, scored, shown = [], [], set()
        for key in pairs:
            value = value_of[key]
            row += key + value
            asked = list(value) if key in shown else [IGNORE_INDEX] * len(value)
            scored += [IGNORE_INDEX] * len(key) + asked
            shown.add(key)
        inputs[b, -len(row) :], labels[b, -len(row) :] = row, scored
    if held_out:
        return inputs[:, :-1], labels[:, 1:]
    return inputs[:, :-1], inputs[:, 1:]


def random_context_motif_floor(split: Split, values: range) -> float:
    """Per-token accuracy of emitting a random one of the distinct value motifs (maximal runs
    of tokens from ``values``) that were complete before each scored position."""
    total, count = 0.0, 0
    for x, y in zip(split.inputs.tolist(), split.targets.tolist(), strict=True):
        motifs: set[tuple[int, ...]] = set()
        run: list[int] = []
        for t, token in enumerate(x):
            if token in values:
                run.append(token)
            elif run:
                motifs.add(tuple(run))
                run = []
            if y[t] == IGNORE_INDEX:
                continue
            offset = len(run)  # the target is token `offset` of the value being given
            hits = sum(len(m) > offset and m[offset] == y[t] for m in motifs)
            total += hits / len(motifs)
            count += 1
    return total / max(count, 1)


@register_task("mad_fuzzy_recall")
class MadFuzzyRecall(Task):
    Params = FuzzyRecallParams
    description = "fuzzy in-context recall (MAD): recall multi-token values of multi-token keys"

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        return TaskSpec.next_token(p.vocab_size, p.seq_len)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(
                *generate(p, n, rng(p.seed, f"mad_fuzzy_recall/{name}"), held_out=name != "train")
            )
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)

    def baseline(self, splits: dict[str, Split]) -> Baseline:
        S = self.params.vocab_size - 1
        floor = random_context_motif_floor(splits["test"], range(S // 2, S))
        return Baseline(floor, "a random one of the context's value motifs")
