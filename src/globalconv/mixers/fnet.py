"""FNet token mixing (Lee-Thorp et al. 2021, "FNet: Mixing Tokens with Fourier Transforms").

    y = Re( DFT_seq( DFT_hidden(x) ) )          # (B, L, D) -> (B, L, D), no parameters

The real part of a 2-D discrete Fourier transform over the sequence and hidden dimensions, in
place of self-attention; the block's residual, LayerNorm and feed-forward network do the rest.

Kept: the paper's mixing sublayer exactly. Changed: the public FNet ignores the padding mask and
transforms the padded length; here a sequence of true length n is transformed at size n, which
is exactly what it gives when run alone, so padding never changes a sequence's output (ragged
batches are transformed one distinct length at a time). Left out: the paper's TPU trick of
computing short DFTs as matrix multiplications, and hybrid FNet-attention stacks as a special
class (use the model's ``layers`` option). Bidirectional only: every output is a mix of every
position, so ``causal=True`` is refused.

FLOPs for one sequence of length L: one real 2-D FFT of L*D points, counted as a real FFT of
that size, 2.5 (L D) log2(L D) (= L real FFTs over D plus D over L at the same rate).
"""

from __future__ import annotations

import torch
from torch import Tensor

from globalconv import ops
from globalconv.mixers.base import TokenMixer, register_mixer


@register_mixer("fnet")
class FNet(TokenMixer):
    supports_causal = False
    length_free = True

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        B, L, D = x.shape
        # FFTs run in float32 or wider (no bf16 FFT on CPU); the result returns in x's dtype
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        if lengths is None or bool((lengths == L).all()):
            return torch.fft.fft2(xf, dim=(1, 2)).real.to(x.dtype)
        y = xf.new_zeros(B, L, D)
        for n in lengths.unique().tolist():  # each true length at its own transform size
            rows = (lengths == n).nonzero().squeeze(1)
            y[rows, :n] = torch.fft.fft2(xf[rows, :n], dim=(1, 2)).real
        return y.to(x.dtype)

    def flops(self, L: int) -> int:
        return int(ops.rfft_flops(L * self.d_model))
