"""Dropout (Srivastava et al. 2014) with a cheap mask on CPU.

On CPU, drawing the mask is most of what ``nn.Dropout`` costs: one call of the generator per
element (a Bernoulli draw), where the multiply itself is a memory pass. Here each element's keep
decision is a 16-bit lane of a 64-bit random word, so one generator call decides four elements:

    lanes  = int16 view of uniform int64 words               # each lane uniform on [-2^15, 2^15)
    keep   = lanes >= -2^15 + round(p * 2^16)                # P(drop) = q = round(p * 2^16) / 2^16
    y      = x * keep / (1 - q)                               # E[y] = x, as nn.Dropout

The drop probability is p rounded to a multiple of 2^-16 (0.1 becomes 0.100006) and survivors
are scaled by 1/(1 - q) with that q, so the expectation is exactly x. The lanes of one word are
independent (the generator's 64 bits are uniform). Draws come from torch's CPU generator, so
seeding and saved RNG states reproduce the masks. On other devices torch's fused dropout runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LANES = 4  # 16-bit lanes per 64-bit random word
LEVELS = 2**16


class Dropout(nn.Module):
    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        dropped = min(round(p * LEVELS), LEVELS - 1)  # lanes below the threshold are dropped
        self.threshold = dropped - LEVELS // 2
        self.scale = LEVELS / (LEVELS - dropped)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty(-(-n // LANES), dtype=torch.int64).random_(-(2**63), None)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        # a float mask times x: torch.where and masked_fill are several times slower on CPU
        return x * keep.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"
