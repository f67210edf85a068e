"""The explicit kernel: one learnable tap per offset and channel (the seed's table), with the
regularisers of Fu et al. 2023, "Simple Hardware-Efficient Long Convolutions for Sequence
Modeling" (Long Convs):

    k = W                                   # (R, D); R = K (circular, causal) or 2K-1 (full)
    k = moving_average(k, window=smooth)    # smoothing over neighbouring taps
    k = sign(k) * relu(|k| - squash)        # squash: soft threshold, |k| <= squash becomes 0
    k = dropout(k, p=dropout)               # kernel dropout, in training only

All three are off by default, which leaves the seed's kernel exactly. Fu et al.'s other knob,
a learning rate and weight decay of its own for the kernel, is the ``lr`` / ``weight_decay``
option every kernel takes (optimiser hints on the parameter).

Smoothing averages over the taps inside the window only (edges average fewer taps, nothing wraps);
the window must be odd so that it is centred. Leaves out: Long Convs' frequency-domain smoothing
variant and their kernel initialisations other than Gaussian.

Initialisation: W ~ N(0, 1/R), so that a full-length sequence's output has the input's variance.
Parameters: K*D (circular, causal) or (2K-1)*D (full), K = max_len.
Resampling (``resample=True``, length n != K): in time, over relative position (tap s stands
for offset s*K/n): linear interpolation when stretching (periodic in circular mode), summing the
taps that fall into each new tap when shrinking; scaled so that the kernel's sum is kept.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.kernels.base import Kernel, register_kernel, stretch


@register_kernel("explicit")
class ExplicitKernel(Kernel):
    resampling = "in time over relative position: linear up, area down"

    def setup(self, *, squash: float = 0.0, dropout: float = 0.0, smooth: int = 1) -> None:
        if squash < 0:
            raise ConfigError(f"explicit kernel: squash must be >= 0, got {squash}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"explicit kernel: dropout must be in [0, 1), got {dropout}")
        if smooth < 1 or smooth % 2 == 0:
            raise ConfigError(f"explicit kernel: smooth must be an odd window >= 1, got {smooth}")
        self.squash, self.dropout, self.smooth = squash, dropout, smooth
        R = self.rows(self.max_len)
        self.weight = nn.Parameter(torch.randn(R, self.d_model) / math.sqrt(R))  # (R, D)

    def native(self) -> Tensor:  # (R, D)
        k = self.weight
        if self.smooth > 1:  # (1, D, R) -> mean over each window of taps
            k = F.avg_pool1d(
                k.t()[None],
                self.smooth,
                stride=1,
                padding=self.smooth // 2,
                count_include_pad=False,
            )[0].t()
        if self.squash > 0:
            k = torch.sign(k) * F.relu(k.abs() - self.squash)
        return F.dropout(k, self.dropout, self.training)

    def resampled(self, n: int) -> Tensor:
        return stretch(self.native(), n, self.mode)

    def flops(self, n: int) -> int:
        R = self.rows(self.max_len)
        return (
            R * self.d_model * ((self.smooth if self.smooth > 1 else 0) + (3 if self.squash else 0))
        )
