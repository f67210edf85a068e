"""Lightweight and dynamic convolutions (Wu et al. 2019, "Pay Less Attention with Lightweight and
Dynamic Convolutions").

    u = GLU(x W_in + b_in)                                   # (B, L, D), W_in: D -> 2D
    w = dropout(softmax_j(kernel))                           # (H, k), or (B, L, H, k) dynamic
    v[t, c] = sum_{j<k} w[h(c), j] * u[t + j - left, c]      # depthwise, u = 0 outside [0, n)
    y = v W_out + b_out

A short depthwise convolution whose k taps are softmax-normalised and shared by the D/H channels
of each of H groups ("heads"), with DropConnect on the normalised taps. ``lightconv`` learns one
kernel per head; ``dynamicconv`` predicts it at every position from that position alone
(a linear map D -> H k), so the mixing depends on the input but stays local and linear-time.
``left`` is k-1 when causal (the paper's decoder) and (k-1)/2 when bidirectional (its encoder,
centred, so k must be odd).

Kept: GLU input projection, softmax-normalised shared kernels, weight dropout, output
projection. Left out: the per-layer kernel sizes of the paper (3, 7, 15, 31, ...; set them per
layer with the model's ``layers`` option), the optional convolution bias, and the CUDA kernels:
``dynamicconv`` sums over taps in PyTorch, one shifted product per tap.

Defaults: kernel_size 31 (the paper's size for most layers), heads 4 (as ``attention`` here; the
paper uses 16 at D=1024), weight_dropout 0 (the paper trains with 0.1).
Parameters: lightconv 3 D^2 + 3 D + H k; dynamicconv adds D H k + H k for the kernel predictor.
FLOPs for one sequence of length L: projections 6 L D^2, convolution 2 L D k, softmax 5 H k
(dynamic: 5 L H k) and, dynamic only, kernel prediction 2 L D H k; GLU not counted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask


class _ShortConv(TokenMixer):
    """Shared part: option checks, GLU input, masking, output projection."""

    length_free = True  # k taps, whatever the length

    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool,
        kernel_size: int,
        heads: int,
        weight_dropout: float,
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if kernel_size < 1:
            raise ConfigError(f"{self.name}: kernel_size must be >= 1, got {kernel_size}")
        if not causal and kernel_size % 2 == 0:
            raise ConfigError(
                f"{self.name}: a bidirectional (centred) kernel needs an odd kernel_size, "
                f"got {kernel_size}; use {kernel_size + 1}"
            )
        if heads < 1 or d_model % heads:
            raise ConfigError(f"{self.name}: d_model={d_model} is not divisible by heads={heads}")
        if not 0.0 <= weight_dropout < 1.0:
            raise ConfigError(
                f"{self.name}: weight_dropout must lie in [0, 1), got {weight_dropout}"
            )
        self.kernel_size = kernel_size
        self.heads = heads
        self.weight_dropout = weight_dropout
        self.left = kernel_size - 1 if causal else (kernel_size - 1) // 2
        self.inp = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def convolve(self, u: Tensor) -> Tensor:  # (B, L, D), zero past each sequence's end
        raise NotImplementedError

    def normalise(self, logits: Tensor) -> Tensor:  # (..., H, k) -> softmax over taps, dropped
        w = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        return F.dropout(w, self.weight_dropout, self.training)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        keep = valid_mask(lengths, x.shape[1], x.device)
        u = F.glu(self.inp(x), dim=-1)  # (B, L, D)
        if keep is not None:
            u = u * keep  # the convolution reads zeros past n, as for the sequence alone
        y = self.out(self.convolve(u))
        return y if keep is None else y * keep

    def _padded(self, u: Tensor) -> Tensor:  # (B, L + k - 1, D), u[t + j - left] at row t + j
        return F.pad(u, (0, 0, self.left, self.kernel_size - 1 - self.left))

    def state_size(self, L: int) -> int | None:
        return (self.kernel_size - 1) * self.d_model if self.causal else None  # last k-1 of u

    def flops(self, L: int) -> int:
        D, k = self.d_model, self.kernel_size
        return 6 * L * D * D + 2 * L * D * k  # projections and convolution


@register_mixer("lightconv")
class LightConv(_ShortConv):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        kernel_size: int = 31,
        heads: int = 4,
        weight_dropout: float = 0.0,
    ) -> None:
        super().__init__(d_model, max_len, causal, kernel_size, heads, weight_dropout)
        self.kernel = nn.Parameter(torch.randn(heads, kernel_size) / kernel_size**0.5)  # (H, k)

    def convolve(self, u: Tensor) -> Tensor:
        D = self.d_model
        w = self.normalise(self.kernel).to(u.dtype)  # (H, k)
        w = w.repeat_interleave(D // self.heads, dim=0)  # (D, k): channel c uses head c // (D/H)
        v = F.conv1d(self._padded(u).transpose(1, 2), w[:, None, :], groups=D)  # (B, D, L)
        return v.transpose(1, 2)

    def flops(self, L: int) -> int:
        return super().flops(L) + 5 * self.heads * self.kernel_size  # one softmax per kernel


@register_mixer("dynamicconv")
class DynamicConv(_ShortConv):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        kernel_size: int = 31,
        heads: int = 4,
        weight_dropout: float = 0.0,
    ) -> None:
        super().__init__(d_model, max_len, causal, kernel_size, heads, weight_dropout)
        self.predict = nn.Linear(d_model, heads * kernel_size)  # kernel of position t from u[t]

    def convolve(self, u: Tensor) -> Tensor:
        B, L, D = u.shape
        H, k = self.heads, self.kernel_size
        w = self.normalise(self.predict(u).view(B, L, H, 1, k)).to(u.dtype)  # (B, L, H, 1, k)
        up = self._padded(u).view(B, L + k - 1, H, D // H)
        v = sum(w[..., j] * up[:, j : j + L] for j in range(k))  # one shifted product per tap
        return v.view(B, L, D)

    def flops(self, L: int) -> int:
        D, H, k = self.d_model, self.heads, self.kernel_size
        return super().flops(L) + 2 * L * D * H * k + 5 * L * H * k  # prediction, softmax
