"""Copy and reverse: sequence-to-sequence with an encoder-decoder, or decoder-only with a separator.

A source of n random symbols (n uniform in [min_len, max_len]) is to be reproduced as it is
(``copy``) or back to front (``reverse``), followed by an end token. Two ways to pose it:

``architecture: encoder_decoder`` (default), the setting of "Attention Is All You Need": the
encoder reads the source; the decoder reads BOS + target and predicts target + EOS, one token per
position, through causal self-mixing and cross-attention to the encoder (cross-attention is kept
whatever the mixer; only self-attention is replaced)::

    inputs          a b c d                 lengths n
    decoder_inputs  BOS  x1  x2  x3  x4     decoder_lengths n+1
    targets         x1   x2  x3  x4  EOS

``architecture: decoder``: one causal sequence ``source SEP target``, scored on the target half::

    inputs   a    b    c    d    SEP  x1   x2   x3   x4
    targets  -100 -100 -100 -100 x1   x2   x3   x4   EOS

Metric: per-token accuracy under teacher forcing, over target tokens and the end token.
Variable n makes the offset between a source token and its copy depend on the example in the
decoder-only form, so a fixed convolution kernel cannot copy by one shift.

Tokens: pad 0, BOS/SEP 1, EOS 2, symbols 3 .. num_symbols + 2.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from globalconv.tasks.base import IGNORE_INDEX, Split, Task, TaskSpec, register_task
from globalconv.tasks.common import SyntheticParams, drop_leaks, rng, sizes, split_numpy

PAD, BOS, EOS, FIRST_SYMBOL = 0, 1, 2, 3


class CopyParams(SyntheticParams):
    num_symbols: int = Field(10, ge=2, description="distinct symbols in the source")
    min_len: int = Field(8, ge=1, description="shortest source")
    max_len: int = Field(32, ge=1, description="longest source")
    architecture: Literal["encoder_decoder", "decoder"] = Field(
        "encoder_decoder", description="encoder_decoder (cross-attention), or decoder with SEP"
    )

    @model_validator(mode="after")
    def _range(self) -> CopyParams:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len={self.min_len} exceeds max_len={self.max_len}")
        return self


def generate(p: CopyParams, n: int, g: np.random.Generator, reverse: bool) -> dict[str, np.ndarray]:
    """Arrays for one split: inputs, targets, lengths (+ decoder_inputs, decoder_lengths)."""
    M = p.max_len
    lengths = g.integers(p.min_len, M + 1, size=n)  # (n,)
    j = np.arange(M)[None, :]  # (1, M)
    inside = j < lengths[:, None]  # (n, M)
    source = np.where(inside, g.integers(FIRST_SYMBOL, FIRST_SYMBOL + p.num_symbols, (n, M)), PAD)
    if reverse:  # target[j] = source[n-1-j]
        back = np.clip(lengths[:, None] - 1 - j, 0, M - 1)
        target = np.where(inside, np.take_along_axis(source, back, axis=1), PAD)
    else:
        target = source
    rows = np.arange(n)
    if p.architecture == "encoder_decoder":
        decoder_inputs = np.concatenate([np.full((n, 1), BOS), target], axis=1)  # (n, M+1)
        targets = np.concatenate([target, np.zeros((n, 1), dtype=np.int64)], axis=1)
        targets[rows, lengths] = EOS
        targets[np.arange(M + 1)[None, :] > lengths[:, None]] = IGNORE_INDEX
        return dict(
            inputs=source,
            targets=targets,
            lengths=lengths,
            decoder_inputs=decoder_inputs,
            decoder_lengths=lengths + 1,
        )
    # decoder-only: source, SEP, target in one row of length 2n+1
    t = np.arange(2 * M + 1)[None, :]  # (1, 2M+1)
    n_ = lengths[:, None]
    after = np.clip(t - n_ - 1, 0, M - 1)  # index into target for positions after SEP
    inputs = np.where(t < n_, np.take_along_axis(source, np.clip(t, 0, M - 1), axis=1), PAD)
    inputs = np.where(t == n_, BOS, inputs)
    inputs = np.where((t > n_) & (t <= 2 * n_), np.take_along_axis(target, after, axis=1), inputs)
    scored = (t >= n_) & (t < 2 * n_)  # position n+j predicts target[j]
    targets = np.where(scored, np.take_along_axis(target, np.clip(t - n_, 0, M - 1), axis=1), -1)
    targets[rows, 2 * lengths] = EOS
    targets[targets == -1] = IGNORE_INDEX
    return dict(inputs=inputs, targets=targets, lengths=2 * lengths + 1)


class _SourceToTarget(Task):
    Params = CopyParams
    reverse: ClassVar[bool] = False

    @property
    def spec(self) -> TaskSpec:
        p = self.params
        vocab = p.num_symbols + FIRST_SYMBOL
        if p.architecture == "encoder_decoder":
            max_len = p.max_len + 1  # the decoder's BOS + target
        else:
            max_len = 2 * p.max_len + 1
        return TaskSpec(
            max_len=max_len,
            num_outputs=vocab,
            head="token",
            causal=True,
            vocab_size=vocab,
            architecture="encoder_decoder" if p.architecture == "encoder_decoder" else "encoder",
        )

    def splits(self) -> dict[str, Split]:
        p = self.params
        splits = {
            name: split_numpy(**generate(p, n, rng(p.seed, f"{self.name}/{name}"), self.reverse))
            for name, n in sizes(p).items()
        }
        return drop_leaks(splits)


@register_task("copy")
class Copy(_SourceToTarget):
    description = "copy a random sequence (encoder-decoder, or decoder-only with a separator)"


@register_task("reverse")
class Reverse(_SourceToTarget):
    description = "reverse a random sequence (encoder-decoder, or decoder-only with a separator)"
    reverse = True
