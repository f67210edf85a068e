"""MLP-Mixer token mixing (Tolstikhin et al. 2021, "MLP-Mixer: An all-MLP Architecture for Vision").

    y[:, c] = W2 · GELU(W1 · x[:, c] + b1) + b2          for every channel c
    W1: (H, max_len), W2: (max_len, H), shared over channels

An MLP across positions, applied to each channel separately with the same weights: a learned,
position-dependent mixing of all positions that does not depend on the input values, as a
global depthwise convolution does (the convolution is the special case of one linear layer,
Toeplitz/circulant in the positions and different per channel).

Kept: the paper's token-mixing MLP (two linear layers, GELU, hidden width H = D/2 by default as
in Mixer-B/16, D_S = C/2). Left out: the patch embedding and channel-mixing MLP, which are the
Transformer block's embedding and feed-forward network here, and the per-layer LayerNorm placement
(the block's). Lengths: the weights cover max_len positions; a sequence of length n < max_len
is read as zero-padded to max_len (columns n.. of W1 meet zeros, rows n.. of W2 are dropped), so
it gives the same output alone or in a padded batch; a longer sequence is an error. Bidirectional
only: the hidden units see every position, so ``causal=True`` is refused.

Parameters: 2 H max_len + H + max_len. FLOPs for one sequence of length L: 4 L H D (the two
matrix products over the L positions used); bias and GELU not counted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask


@register_mixer("mlp_mixer")
class MLPMixer(TokenMixer):
    supports_causal = False

    def __init__(
        self, d_model: int, max_len: int, causal: bool = False, *, hidden: int | None = None
    ) -> None:
        super().__init__(d_model, max_len, causal)
        self.hidden = hidden if hidden is not None else max(1, d_model // 2)
        if self.hidden < 1:
            raise ConfigError(f"mlp_mixer: hidden must be >= 1, got {hidden}")
        self.up = nn.Linear(max_len, self.hidden)  # W1 (H, max_len), b1 (H,)
        self.down = nn.Linear(self.hidden, max_len)  # W2 (max_len, H), b2 (max_len,)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        self.check_length(L)
        keep = valid_mask(lengths, L, x.device)
        if keep is not None:
            x = x * keep  # positions past n read as the zero padding they stand for
        h = torch.einsum("hl,bld->bhd", self.up.weight[:, :L], x) + self.up.bias[:, None]
        h = F.gelu(h)  # (B, H, D)
        y = torch.einsum("lh,bhd->bld", self.down.weight[:L], h) + self.down.bias[:L, None]
        return y if keep is None else y * keep

    def flops(self, L: int) -> int:
        return 4 * L * self.hidden * self.d_model
