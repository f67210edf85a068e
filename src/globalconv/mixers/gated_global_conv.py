"""The seed's global depthwise convolution made input-dependent by a multiplicative gate, as in
H3 (Fu et al. 2023, "Hungry Hungry Hippos") and BaseConv (Arora et al. 2023, "Zoology"):

    y[t, c] = (x W + b)[t, c] * ( sum_{s<n} k[s, c] x[(t+s) mod n, c] + skip[c] x[t, c] )
                                                     (causal: sum_{s<=t} k[s, c] x[t-s, c])

The convolution is exactly ``global_conv``'s (same explicit kernel as long as the sequence, same
circular or causal mode, same initialisation); the only change is the element-wise product with
a linear projection of the input. Comparing the two isolates whether data-dependence, rather
than globality, is what attention adds.

Kept: BaseConv's form, a gate projection times a long convolution of the input. Left out: H3's
shift-SSM and diagonal-SSM pair, heads and output projection (the block's feed-forward network
mixes channels). ``self.filter`` returns the (L, D) kernel for a given length, so another
kernel parameterisation can replace the explicit one without touching the rest. A sequence
longer than max_len is an error.

Parameters: max_len D + D (kernel, skip) + D^2 + D (gate). FLOPs for one sequence of length L:
the convolution (``globalconv.ops.flops``), 2 L D for the skip, 2 L D^2 for the gate projection,
L D for the product.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv import ops
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask
from globalconv.ops.conv import Backend


class ExplicitFilter(nn.Module):
    """One free tap per position and channel: length L -> kernel (L, D)."""

    def __init__(self, channels: int, max_len: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(max_len, channels) / math.sqrt(max_len))

    def forward(self, L: int) -> Tensor:  # (L, D)
        return self.kernel[:L]


@register_mixer("gated_global_conv")
class GatedGlobalConv(TokenMixer):
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
            raise ValueError(
                f"gated_global_conv: unknown backend {backend!r}; expected {ops.BACKENDS}"
            )
        self.backend = backend
        self.mode = "causal" if causal else "circular"
        self.filter = ExplicitFilter(d_model, max_len)
        self.skip = nn.Parameter(torch.ones(d_model)) if skip else None
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        self.check_length(L)
        keep = valid_mask(lengths, L, x.device)
        if keep is not None:
            x = x * keep  # zero padding: the gate and the skip term are 0 there too
        # the operator computes in float32 itself; autocast would push its direct path to bf16
        with torch.autocast(x.device.type, enabled=False):
            y = ops.global_conv(
                x, self.filter(L), mode=self.mode, lengths=lengths, backend=self.backend
            )
        if self.skip is not None:
            y = y + self.skip * x
        return self.gate(x) * y

    def state_size(self, L: int) -> int | None:
        return L * self.d_model if self.causal else None  # every past input meets its own tap

    def flops(self, L: int) -> int:
        D = self.d_model
        skip = 2 * L * D if self.skip is not None else 0
        return ops.flops(self.mode, L, D, self.backend) + skip + 2 * L * D * D + L * D
