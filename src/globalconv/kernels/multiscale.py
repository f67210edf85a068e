"""The multiscale kernel of SGConv (Li et al. 2022, "What Makes Convolutional Models Great on Long
Sequence Modeling?"): a few small sub-kernels, each upsampled to a span twice the previous one and
weighted by a decaying factor, laid end to end:

    scale i:  sub-kernel P[i] (d taps, d = scale_taps) upsampled linearly to span d * 2^max(0,i-1)
              and weighted by decay^i; scales 0, 1, 2, ... cover offsets [0,d), [d,2d), [2d,4d), ...
    k = concat over scales, cut to K taps, divided by its per-channel norm at initialisation

so the kernel is smooth where it is long and its weight decays with distance: the two properties
SGConv finds sufficient for a long convolution to train well. S = 1 + ceil(log2(K/d)) scales reach
past K = max_len. In full mode a second set of sub-kernels gives the negative offsets (offset -m
reads position m-1 of that set), as SGConv does for bidirectional models.

Upsampling is linear interpolation with sample j of a sub-kernel at the centre of its j-th
1/d-th of the span (torch's ``interpolate(mode="linear")``), written here as evaluation at
fractional positions, so that resampling re-runs the same construction.

Initialisation: P ~ N(0, 1); the norm buffer makes each channel's kernel unit norm at max_len at
initialisation (the explicit kernel's N(0, 1/K) has unit norm in expectation) and stays fixed.
Parameters: S*d*D (2*S*d*D in full mode), independent of K but for S.
Resampling (``resample=True``, length n != K): the sub-kernels are upsampled to spans scaled by
n/K (linear in time over relative position), and the kernel scaled by K/n to keep its sum.
Leaves out: SGConv's multi-channel output heads and its nearest-neighbour upsampling option.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.kernels.base import Kernel, register_kernel


@register_kernel("multiscale")
class MultiscaleKernel(Kernel):
    resampling = "sub-kernel spans scaled by n/max_len, linear in time"

    def setup(self, *, scale_taps: int = 16, decay: float = 0.5) -> None:
        if scale_taps < 2:
            raise ConfigError(f"multiscale kernel: scale_taps must be >= 2, got {scale_taps}")
        if not 0 < decay <= 1:
            raise ConfigError(f"multiscale kernel: decay must be in (0, 1], got {decay}")
        d, K = scale_taps, self.max_len
        S = 1 + max(0, math.ceil(math.log2(K / d)))
        self.scale_taps, self.decay, self.scales = d, decay, S
        spans = [d * 2 ** max(0, i - 1) for i in range(S)]
        starts = [0] + [sum(spans[: i + 1]) for i in range(S - 1)]
        self.register_buffer("spans", torch.tensor(spans, dtype=torch.float64), persistent=False)
        self.register_buffer("starts", torch.tensor(starts, dtype=torch.float64), persistent=False)
        self.register_buffer(
            "weights", decay ** torch.arange(S, dtype=torch.float32), persistent=False
        )
        sides = 2 if self.mode == "full" else 1
        self.weight = nn.Parameter(torch.randn(sides, S, d, self.d_model))  # (sides, S, d, D)
        self.register_buffer("norm", torch.ones(self.d_model))  # (D,), fixed at initialisation
        with torch.no_grad():
            self.norm.copy_(self.native().norm(dim=0))

    def native(self) -> Tensor:
        return self._kernel(self.max_len, 1.0)

    def resampled(self, n: int) -> Tensor:
        return self._kernel(n, self.max_len / n) * (self.max_len / n)

    def _kernel(self, n: int, step: float) -> Tensor:
        """Rows for length n, tap s read at position s*step of the construction. (rows(n), D)"""
        positions = torch.arange(n, device=self.weight.device, dtype=torch.float64) * step
        k = self._evaluate(positions, side=0)
        if self.mode == "full":
            back = self._evaluate(positions[: n - 1], side=1)  # offsets -1, -2, ... -(n-1)
            k = torch.cat([back.flip(0), k])
        return k / self.norm

    def _evaluate(self, u: Tensor, side: int) -> Tensor:
        """The construction at fractional positions u (m,) >= 0: (m, D), 0 past the last scale."""
        S, d = self.scales, self.scale_taps
        scale = (torch.searchsorted(self.starts, u, right=True) - 1).clamp(0, S - 1)  # (m,)
        # tap u covers [u, u+1) of the span, sample j of the sub-kernel sits at v = j
        v = (u - self.starts[scale] + 0.5) / self.spans[scale] * d - 0.5
        v = v.clamp(0, d - 1)
        lo = v.floor().long().clamp(max=d - 1)
        hi = (lo + 1).clamp(max=d - 1)
        w = (v - lo).to(self.weight.dtype)[:, None]
        table = self.weight[side].reshape(S * d, self.d_model)  # (S*d, D)
        k = table[scale * d + lo] * (1 - w) + table[scale * d + hi] * w
        inside = (u < self.starts[-1] + self.spans[-1]).to(k.dtype)[:, None]
        return k * self.weights.to(k.dtype)[scale][:, None] * inside

    def flops(self, n: int) -> int:
        return 6 * self.rows(n) * self.d_model
