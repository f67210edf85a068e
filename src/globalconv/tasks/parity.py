"""Parity and majority of a bit string: aggregation over the whole sequence, at growing lengths.

``parity``: is the number of ones odd? Every bit matters and no partial sum is informative, the
classic hard case for Transformers (Hahn 2020; Bhattamishra et al. 2020) and a test of whether a
mixer can carry one bit of state over the full length. ``majority``: are more than half of the
bits ones (ties count as no)? A smooth, counting aggregate that a single global average solves.

Inputs are uniformly random bits (tokens 0 and 1), length ``seq_len``; with ``min_len`` set, each
example's length is uniform in [min_len, seq_len] and the rest is padding (lengths given).
Sequence classification, two classes, metric accuracy. Short lengths have few distinct strings:
training strings that also occur in the held-out splits are removed (an error if none remain).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy


class BitsParams(SyntheticParams):
    seq_len: int = Field(64, ge=1, description="length of the bit strings")
    min_len: int | None = Field(
        None, ge=1, description="if set, lengths are uniform in [min_len, seq_len], padded"
    )

    @model_validator(mode="after")
    def _range(self) -> BitsParams:
        if self.min_len is not None and self.min_len > self.seq_len:
            raise ValueError(f"min_len={self.min_len} exceeds seq_len={self.seq_len}")
        return self


def parity(bits: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return bits.sum(axis=1) % 2  # padding is 0 and adds nothing


def majority(bits: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return (2 * bits.sum(axis=1) > lengths).astype(np.int64)


def generate(p: BitsParams, n: int, g: np.random.Generator, rule) -> dict[str, np.ndarray]:
    L = p.seq_len
    bits = g.integers(0, 2, size=(n, L))  # (n, L)
    if p.min_len is None:
        lengths = np.full(n, L)
    else:
        lengths = g.integers(p.min_len, L + 1, size=n)
        bits[np.arange(L)[None, :] >= lengths[:, None]] = 0
    out = dict(inputs=bits, targets=rule(bits, lengths))
    if p.min_len is not None:
        out["lengths"] = lengths
    return out


class _Bits(Task):
    Params = BitsParams
    rule: ClassVar = staticmethod(parity)

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(max_len=self.params.seq_len, num_outputs=2, head="sequence", vocab_size=2)

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(**generate(p, n, rng(p.seed, f"{self.name}/{name}"), self.rule))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)


@register_task("parity")
class Parity(_Bits):
    description = "parity of a random bit string (sequence classification)"
    rule = staticmethod(parity)


@register_task("majority")
class Majority(_Bits):
    description = "majority of a random bit string, ties count as 0 (sequence classification)"
    rule = staticmethod(majority)
