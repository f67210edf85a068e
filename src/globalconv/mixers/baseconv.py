"""BaseConv (Arora et al. 2023, "Zoology: Measuring and Improving Recall in Efficient Language
Models"): a linear gate times a convolution, here a short causal convolution followed by a long
(global) one,

    u = shortconv(x)                                        # depthwise, k_s taps (default 3)
    y[t, c] = (x W + b)[t, c] * ( sum_{s<=t} k[s, c] u[t-s, c] + skip[c] u[t, c] )

(bidirectional: the short convolution is centred and the long one is ``global_conv``'s circular
or, with ``padding="zero"``, full mode). Zoology defines BaseConv as y = (u W + b1) * (h * u + b2)
for any filter h; its MQAR runs (Figure 2) alternate layers whose h is a 3-tap filter with layers
whose h is a long implicit filter. Here every layer has both, composed: the short filter gives a
position its neighbours (on MQAR: a value meets the key just before it, which the gate then
multiplies in), the long one carries the products to the queries.

The long convolution is exactly ``global_conv``'s (this class extends it: the same kernel
parameterisations, options, modes and initialisation); against ``gated_global_conv`` the only
change is the short convolution before the long one. Kept: the gate projection, the short and
long filters, the short filter's bias (Zoology's b2 rides on it). Left out: Zoology's residual
inside the mixer (the block adds its own), its per-layer choice of short or long filter, and its
initialisation of every linear layer (and the implicit filter's MLP) to N(0, 0.02^2), which makes
the long filter almost zero at the start.

On MQAR at CPU scale (README, "Recall: what explains the gap to Zoology") the short filter did
not help: an explicit long kernel already holds every 3-tap filter, so the short one changes the
parameterisation only, and at 1000 steps neither this mixer nor ``gated_global_conv`` got past
the floor of guessing one of the context's values. The gap to Zoology's numbers is budget.

Parameters: global_conv's (explicit kernel: max_len D + D) + D^2 + D (gate) + k_s D + D (short
convolution). FLOPs for one sequence of length L: global_conv's, 2 L D^2 for the gate projection,
2 L D k_s for the short convolution, L D for the product.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.mixers.base import register_mixer, valid_mask
from globalconv.mixers.global_conv import GlobalConv


@register_mixer("baseconv")
class BaseConv(GlobalConv):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        short_kernel: int = 3,
        **options: Any,
    ) -> None:
        if short_kernel < 1:
            raise ConfigError(f"baseconv: short_kernel must be >= 1, got {short_kernel}")
        if not causal and short_kernel % 2 == 0:
            raise ConfigError(
                f"baseconv: a bidirectional (centred) short_kernel must be odd, got {short_kernel}"
            )
        super().__init__(d_model, max_len, causal, **options)
        self.short = nn.Conv1d(d_model, d_model, short_kernel, groups=d_model)  # depthwise
        self.short_left = short_kernel - 1 if causal else (short_kernel - 1) // 2
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        keep = valid_mask(lengths, x.shape[1], x.device)
        if keep is not None:
            x = x * keep  # the short filter must not read a sequence's padding
        right = self.short.kernel_size[0] - 1 - self.short_left
        u = self.short(F.pad(x.transpose(1, 2), (self.short_left, right))).transpose(1, 2)
        if keep is not None:
            u = u * keep  # its bias would otherwise reach the padding
        return self.gate(x) * super().forward(u, lengths)  # (B, L, D)

    def state_size(self, L: int) -> int | None:
        # every past short-filtered input for the long filter, plus the short filter's window
        if not self.causal:
            return None
        return L * self.d_model + (self.short.kernel_size[0] - 1) * self.d_model

    def flops(self, L: int) -> int:
        D, k = self.d_model, self.short.kernel_size[0]
        return super().flops(L) + 2 * L * D * D + 2 * L * D * k + L * D
