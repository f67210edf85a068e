"""The seed's mixer: a global depthwise convolution with an explicit kernel as long as the sequence.

    y[t, c] = sum_{s<n} W[s, c] * x[(t+s) mod n, c] + skip[c] * x[t, c]      (bidirectional)
    y[t, c] = sum_{s<=t} W[s, c] * x[t-s, c]       + skip[c] * x[t, c]      (causal)

W has shape (max_len, D): one tap per position and channel, no mixing across channels (the
block's feed-forward network does that, and supplies the nonlinearity the seed stacks between
convolutions). A sequence of length n < max_len uses the first n taps; a longer one is an error.

Initialisation: W ~ N(0, 1/max_len), so that at n = max_len the output has the input's
variance; skip = 1 (the identity path, as S4's D term).

Parameters: max_len * D + D. FLOPs for one sequence of length L: see ``globalconv.ops.flops``
(FFT path: three real FFTs and a complex product per channel; direct path: 2 L^2 D), plus 2 L D
for the skip term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv import ops
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask
from globalconv.ops.conv import Backend


@register_mixer("global_conv")
class GlobalConv(TokenMixer):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        backend: Backend = "auto",
        skip: bool = True,
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if backend not in ops.BACKENDS:
            raise ValueError(f"global_conv: unknown backend {backend!r}; expected {ops.BACKENDS}")
        self.backend = backend
        self.mode = "causal" if causal else "circular"
        self.kernel = nn.Parameter(torch.randn(max_len, d_model) / math.sqrt(max_len))  # (K, D)
        self.skip = nn.Parameter(torch.ones(d_model)) if skip else None

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        self.check_length(L)
        y = ops.global_conv(
            x, self.kernel[:L], mode=self.mode, lengths=lengths, backend=self.backend
        )
        if self.skip is not None:
            keep = valid_mask(lengths, L, x.device)
            y = y + self.skip * (x if keep is None else x * keep)
        return y

    def flops(self, L: int) -> int:
        skip = 2 * L * self.d_model if self.skip is not None else 0
        return ops.flops(self.mode, L, self.d_model, self.backend) + skip
