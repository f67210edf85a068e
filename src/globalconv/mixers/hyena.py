"""Hyena (Poli et al. 2023, "Hyena Hierarchy: Towards Larger Convolutional Language Models").

    v, x^1, ..., x^N = split( shortconv( x W_in + b_in ) )        # each (B, L, D)
    z^1 = v
    z^{i+1} = x^i * ( h^i ⊛ z^i + beta^i * z^i )                   # i = 1..N, element-wise gate
    y = z^{N+1} W_out + b_out

h^i are long filters (as long as the sequence), one per channel and order, generated implicitly:

    h^i[j, c] = exp(-alpha_c |j| / max_len) * FFN( features(j / max_len) )[i, c]

an MLP with sine activations (learned frequencies) over positional features of the lag j
(the lag itself, and cos and sin of ``bands`` frequencies), times an exponential decay whose rate
alpha_c differs per channel, so some channels stay local and others reach the whole sequence.
Parameters do not grow with the filter length.

Causal (the paper's setting): ``h ⊛ z`` is the operator's ``causal`` mode over lags 0..L-1 and
the short convolution (kernel 3) looks back. Bidirectional: the filter is evaluated at lags
-(L-1)..L-1 and applied with the operator's ``full`` mode (zero padded, no wrap-around), and the
short convolution is centred.

Kept: input projections, short depthwise convolution, implicit filter with decay, order-N gated
recurrence (order 2 by default), the bias (skip) term beta, output projection. Left out: the
filter normalisation and modulation shift variants, multi-head Hyena, dropout inside the filter,
and recurrent (distilled) inference. ``self.filter`` maps signed lags to a (K, N*D) kernel, so
another kernel parameterisation can replace it without touching the rest.

Parameters (order N, filter width W, F = 1 + 2 bands features, short kernel k_s):
(N+2)(D^2 + D) + (N+1) D (k_s + 1) + W (F + W + N D + 4) + 2 N D.
FLOPs for one sequence of length L (R = L causal, 2L-1 bidirectional filter rows): input and
output projections 2 L D^2 (N+2), short convolution 2 L (N+1) D k_s, filter 2 R (F W + W^2 +
W N D) + R N D, N long convolutions (``globalconv.ops.flops`` of the mode), gates and bias
3 N L D; sine activations and the decay's exponential not counted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv import ops
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask
from globalconv.ops.conv import Backend


class Sine(nn.Module):
    """sin(omega * x) with one learned frequency per feature (the filter MLP's activation)."""

    def __init__(self, width: int, omega: float = 1.0) -> None:
        super().__init__()
        self.omega = nn.Parameter(torch.full((width,), omega))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega * x)


class ImplicitFilter(nn.Module):
    """Long filter generated from positions: signed lags (K,) -> taps (K, channels)."""

    def __init__(self, channels: int, max_len: int, *, width: int = 64, bands: int = 8) -> None:
        super().__init__()
        self.max_len = max_len
        features = 1 + 2 * bands
        self.register_buffer("freqs", math.pi * torch.arange(1, bands + 1.0), persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(features, width),
            Sine(width),
            nn.Linear(width, width),
            Sine(width),
            nn.Linear(width, channels),
        )
        # decay to 1% of the start between 0.3 and 1.5 max_len: fast (local) to slow channels
        rates = torch.linspace(math.log(100) / 1.5, math.log(100) / 0.3, channels)
        self.register_buffer("decay_rates", rates, persistent=False)  # (channels,)

    def forward(self, lags: Tensor) -> Tensor:  # (K,) integers -> (K, channels)
        tau = (lags.to(self.freqs.dtype) / self.max_len)[:, None]  # (K, 1), in (-1, 1)
        z = torch.cat([tau, torch.cos(tau * self.freqs), torch.sin(tau * self.freqs)], dim=-1)
        return self.mlp(z) * torch.exp(-self.decay_rates * tau.abs())

    def flops(self, rows: int) -> int:
        first, middle, last = self.mlp[0], self.mlp[2], self.mlp[4]
        macs = first.in_features * first.out_features + middle.in_features * middle.out_features
        macs += last.in_features * last.out_features
        return 2 * rows * macs + rows * last.out_features


@register_mixer("hyena")
class Hyena(TokenMixer):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        order: int = 2,
        filter_width: int = 64,
        short_kernel: int = 3,
        backend: Backend = "auto",
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if order < 1 or filter_width < 1 or short_kernel < 1:
            raise ValueError(
                f"hyena: order, filter_width and short_kernel must be >= 1, "
                f"got {order}, {filter_width}, {short_kernel}"
            )
        if not causal and short_kernel % 2 == 0:
            raise ValueError(
                f"hyena: a bidirectional (centred) short_kernel must be odd, got {short_kernel}"
            )
        if backend not in ops.BACKENDS:
            raise ValueError(f"hyena: unknown backend {backend!r}; expected {ops.BACKENDS}")
        self.order = order
        self.backend = backend
        self.mode = "causal" if causal else "full"
        inner = (order + 1) * d_model
        self.inp = nn.Linear(d_model, inner)
        self.short = nn.Conv1d(inner, inner, short_kernel, groups=inner)  # depthwise, k_s taps
        self.short_left = short_kernel - 1 if causal else (short_kernel - 1) // 2
        self.filter = ImplicitFilter(order * d_model, max_len, width=filter_width)
        self.beta = nn.Parameter(torch.randn(order, d_model))  # (N, D) bias (skip) terms
        self.out = nn.Linear(d_model, d_model)

    def kernels(self, L: int) -> Tensor:  # (N, K, D): K = L causal, 2L-1 full (row K-1+s: x[t+s])
        device = self.beta.device
        if self.causal:
            lags = torch.arange(L, device=device)  # row s weighs x[t-s]
        else:
            lags = torch.arange(L - 1, -L, -1, device=device)  # row L-1+s weighs x[t+s]: lag -s
        h = self.filter(lags)  # (K, N*D)
        return h.view(len(lags), self.order, self.d_model).transpose(0, 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        self.check_length(L)
        keep = valid_mask(lengths, L, x.device)
        mask = (lambda t: t) if keep is None else (lambda t: t * keep)
        u = mask(self.inp(x)).transpose(1, 2)  # (B, (N+1) D, L), zero past each sequence's end
        right = self.short.kernel_size[0] - 1 - self.short_left
        u = mask(self.short(F.pad(u, (self.short_left, right))).transpose(1, 2))  # (B, L, (N+1)D)
        z, *gates = u.split(self.d_model, dim=-1)  # z^1 = v, then x^1 .. x^N
        h = self.kernels(L)
        for i, gate in enumerate(gates):
            conv = ops.global_conv(z, h[i], mode=self.mode, lengths=lengths, backend=self.backend)
            z = gate * (conv + self.beta[i] * z)
        return mask(self.out(z))

    def state_size(self, L: int) -> int | None:
        # a long convolution keeps every past input of each order, plus the short conv's window
        if not self.causal:
            return None
        return (
            self.order * L * self.d_model + (self.short.kernel_size[0] - 1) * self.short.in_channels
        )

    def flops(self, L: int) -> int:
        D, N = self.d_model, self.order
        rows = L if self.causal else 2 * L - 1
        projections = 2 * L * D * D * (N + 2)
        short = 2 * L * (N + 1) * D * self.short.kernel_size[0]
        long = N * ops.flops(self.mode, L, D, self.backend)
        return projections + short + self.filter.flops(rows) + long + 3 * N * L * D
