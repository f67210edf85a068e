"""Multi-head scaled dot-product self-attention (Vaswani et al. 2017, "Attention Is All You Need").

The reference every other mixer is measured against: Q, K, V and output projections (4 D^2
parameters plus biases), ``heads`` heads, softmax(Q K^T / sqrt(d_head)) V through
``torch.nn.functional.scaled_dot_product_attention``. Padded keys are masked from ``lengths``;
causal masking when ``causal``.

FLOPs for one sequence of length L (multiply-add = 2): projections 8 L D^2, scores 2 L^2 D,
weighted sum 2 L^2 D, softmax 5 H L^2 (max, subtract, exp, sum, divide). The causal mask is not
credited: the analytic count is that of the dense computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask


@register_mixer("attention")
class Attention(TokenMixer):
    length_free = True
    needs_positions = True  # permutation-equivariant: order reaches it only through positions

    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        heads: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if heads < 1 or d_model % heads:
            raise ConfigError(f"attention: d_model={d_model} is not divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        mask = None  # boolean (B, 1, L, L), True where attending is allowed
        if lengths is not None:
            mask = (torch.arange(L, device=x.device)[None, :] < lengths[:, None])[:, None, None, :]
            if self.causal:
                mask = mask & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.causal and mask is None,
        )  # (B, H, L, d_head)
        y = self.out(y.transpose(1, 2).reshape(B, L, D))
        keep = valid_mask(lengths, L, x.device)
        return y if keep is None else y * keep

    @torch.no_grad()
    def attention_maps(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, H, L, L) softmax weights A[b, h, t, j] with which output t reads value j.

        Computed explicitly (the forward's fused kernel never forms them), with the forward's
        masks: padded keys get weight 0 and rows t >= n are 0. For analysis, not training.
        """
        B, L, D = x.shape
        q, k, _ = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (D // self.heads) ** 0.5  # (B, H, L, L)
        allowed = torch.ones(L, L, dtype=torch.bool, device=x.device)
        if self.causal:
            allowed = allowed.tril()
        keep = valid_mask(lengths, L, x.device)  # (B, L, 1)
        if keep is not None:
            allowed = allowed & keep.transpose(1, 2)[:, None]  # keys j < n
        maps = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        return maps if keep is None else maps * keep[:, None]  # queries t < n

    def state_size(self, L: int) -> int | None:
        return 2 * L * self.d_model if self.causal else None  # the key-value cache

    def flops(self, L: int) -> int:
        D = self.d_model
        return 8 * L * D * D + 4 * L * L * D + 5 * self.heads * L * L
