"""The seed's global depthwise convolution made input-dependent by a multiplicative gate, as in
H3 (Fu et al. 2023, "Hungry Hungry Hippos") and BaseConv (Arora et al. 2023, "Zoology"):

    y[t, c] = (x W + b)[t, c] * ( sum_{s<n} k[s, c] x[(t+s) mod n, c] + skip[c] x[t, c] )
                                                     (causal: sum_{s<=t} k[s, c] x[t-s, c])

The convolution is exactly ``global_conv``'s (this class extends it: same kernel
parameterisations and options, same circular/zero/causal modes, same initialisation); the only
change is the element-wise product with a linear projection of the input. Comparing the two
isolates whether data-dependence, rather than globality, is what attention adds.

Kept: BaseConv's form, a gate projection times a long convolution of the input. Left out: H3's
shift-SSM and diagonal-SSM pair, heads and output projection (the block's feed-forward network
mixes channels), and the short convolution BaseConv and H3 put before the gate (``baseconv`` has
it; on MQAR at CPU scale it did not help, see the README's "Recall: what explains the gap to
Zoology").

Parameters: global_conv's (explicit kernel: max_len D + D) + D^2 + D (gate). FLOPs for one
sequence of length L: global_conv's, 2 L D^2 for the gate projection, L D for the product.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from globalconv.mixers.base import register_mixer, valid_mask
from globalconv.mixers.global_conv import GlobalConv


@register_mixer("gated_global_conv")
class GatedGlobalConv(GlobalConv):
    def __init__(self, d_model: int, max_len: int, causal: bool = False, **options: Any) -> None:
        super().__init__(d_model, max_len, causal, **options)
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        keep = valid_mask(lengths, x.shape[1], x.device)
        gate = self.gate(x if keep is None else x * keep)  # 0 in the padding (the conv is too)
        return gate * super().forward(x, lengths)

    def flops(self, L: int) -> int:
        D = self.d_model
        return super().flops(L) + 2 * L * D * D + L * D
