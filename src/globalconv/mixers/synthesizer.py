"""Random and Dense Synthesizer (Tay et al. 2020, "Synthesizer: Rethinking Self-Attention for
Transformer Models"): attention weights synthesised without query-key dot products.

    synthesizer_random:  A_h = softmax(R_h)                          R_h: (max_len, max_len)
    synthesizer_dense:   A_h[t] = softmax(W2_h relu(W1 x_t + b1)_h + b2_h)   one row per token
    both:                y = out( concat_h A_h · V_h(x) )            V, out: linear maps

Random: the mixing weights are a learned (or, with ``trainable=False``, fixed) matrix per head,
the same for every input; the closest relative of a global convolution with a position-specific
rather than shift-invariant kernel. Dense: each token predicts its own row of weights over the
max_len positions from its own value alone (a two-layer MLP), no pairwise interaction.

Kept: the two variants as two registered names, heads, value and output projections, softmax
normalisation over the positions a row may see (the first n; the first t+1 when causal, as the
paper's decoder masks). A sequence of length n uses the top-left n x n block of R (or the first
n logits of each dense row), which is what it gives when run alone. Left out: the factorised
and mixture variants, attention dropout. Longer sequences than max_len are an error.

Parameters (heads H, d_head = D/H): random H max_len^2 + 2 (D^2 + D); dense, per head W2:
(d_head -> max_len): D^2 + D + D max_len + H max_len + 2 (D^2 + D).
FLOPs for one sequence of length L (multiply-add = 2): value and output projections 4 L D^2,
weighted sum 2 L^2 D, softmax 5 H L^2 (as ``attention``); dense adds 2 L D^2 + 2 L^2 D for the
logits. The causal mask is not credited.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask


class _Synthesizer(TokenMixer):
    """Shared part: heads, value/output projections, masked softmax and weighted sum."""

    def __init__(self, d_model: int, max_len: int, causal: bool, heads: int) -> None:
        super().__init__(d_model, max_len, causal)
        if heads < 1 or d_model % heads:
            raise ConfigError(f"{self.name}: d_model={d_model} is not divisible by heads={heads}")
        self.heads = heads
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def logits(self, x: Tensor) -> Tensor:  # (B or 1, H, L, L): row t scores positions s
        raise NotImplementedError

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        B, L, D = x.shape
        self.check_length(L)
        scores = self.logits(x)
        allowed = torch.ones(1, L, dtype=torch.bool, device=x.device)  # (B or 1, L) columns
        if lengths is not None:
            allowed = torch.arange(L, device=x.device)[None, :] < lengths[:, None]
        allowed = allowed[:, None, None, :]  # (B or 1, 1, 1, L)
        if self.causal:
            allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        scores = scores.to(torch.promote_types(scores.dtype, torch.float32))  # softmax >= fp32
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        v = self.value(x).view(B, L, self.heads, D // self.heads).transpose(1, 2)  # (B,H,L,dh)
        y = (weights.to(v.dtype) @ v).transpose(1, 2).reshape(B, L, D)
        y = self.out(y)
        keep = valid_mask(lengths, L, x.device)
        return y if keep is None else y * keep

    def flops(self, L: int) -> int:
        D = self.d_model
        return 4 * L * D * D + 2 * L * L * D + 5 * self.heads * L * L

    def state_size(self, L: int) -> int | None:
        return L * self.d_model if self.causal else None  # the cached values V


@register_mixer("synthesizer_random")
class RandomSynthesizer(_Synthesizer):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        heads: int = 4,
        trainable: bool = True,
    ) -> None:
        super().__init__(d_model, max_len, causal, heads)
        R = torch.randn(heads, max_len, max_len)  # (H, max_len, max_len) logits, N(0, 1)
        if trainable:
            self.R = nn.Parameter(R)
        else:
            self.register_buffer("R", R)

    def logits(self, x: Tensor) -> Tensor:
        L = x.shape[1]
        return self.R[None, :, :L, :L]  # (1, H, L, L)


@register_mixer("synthesizer_dense")
class DenseSynthesizer(_Synthesizer):
    def __init__(self, d_model: int, max_len: int, causal: bool = False, *, heads: int = 4) -> None:
        super().__init__(d_model, max_len, causal, heads)
        d_head = d_model // heads
        self.hidden = nn.Linear(d_model, d_model)  # W1, b1
        self.w2 = nn.Parameter(torch.randn(heads, d_head, max_len) / d_head**0.5)  # per head
        self.b2 = nn.Parameter(torch.zeros(heads, max_len))

    def logits(self, x: Tensor) -> Tensor:
        B, L, D = x.shape
        h = F.relu(self.hidden(x)).view(B, L, self.heads, D // self.heads)  # (B, L, H, dh)
        scores = torch.einsum("blhe,hes->bhls", h, self.w2[..., :L])  # (B, H, L, L)
        return scores + self.b2[None, :, None, :L]

    def flops(self, L: int) -> int:
        D = self.d_model
        return super().flops(L) + 2 * L * D * D + 2 * L * L * D
