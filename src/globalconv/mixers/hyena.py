"""Hyena (Poli et al. 2023, "Hyena Hierarchy: Towards Larger Convolutional Language Models").

    v, x^1, ..., x^N = split( shortconv( x W_in + b_in ) )        # each (B, L, D)
    z^1 = x^1 * v                                                  # element-wise gate
    z^{i} = x^i * ( h^{i-1} ⊛ z^{i-1} + beta^{i-1} * z^{i-1} )    # i = 2..N
    y = z^N W_out + b_out

so order N has N gates and N-1 long filters: the short convolution is the first filter (the role
of H3's shift SSM, with which order 2 is H3 with an implicit long filter, the paper's Section 3),
as in the authors' implementation (safari's HyenaOperator, also Zoology's Hyena, which Zoology's
MQAR results use): order 2 is y = x^2 * (h ⊛ (x^1 * v)). The product x^1 * v comes before any long
filter, so a value can be multiplied by the key the short filter shifted next to it before the
long filter carries the product to the queries.

h^i are long filters (as long as the sequence), one per channel and order, from a kernel
parameterisation of ``globalconv.kernels`` with (N-1)*D channels (option ``kernel``, its options
in ``kernel_options``). The default, ``implicit``, is Hyena's: an MLP with sine activations over
positional features of the lag, times a per-channel exponential decay, so some channels stay
local and others reach the whole sequence; its parameters do not grow with the filter length
and it runs at any length.

Causal (the paper's setting): ``h ⊛ z`` is the operator's ``causal`` mode over lags 0..L-1 and
the short convolution (kernel 3) looks back. Bidirectional: the filter is evaluated at lags
-(L-1)..L-1 and applied with the operator's ``full`` mode (zero padded, no wrap-around), and the
short convolution is centred.

Kept: input projections, short depthwise convolution, implicit filter with decay, order-N gated
recurrence (order 2 by default), the bias (skip) term beta, output projection. Left out: the
filter normalisation and modulation shift variants, multi-head Hyena, dropout inside the filter,
and recurrent (distilled) inference.

Parameters: (N+2)(D^2 + D) + (N+1) D (k_s + 1) + (N-1) D + the kernel's (see its docstring;
short kernel k_s; the kernel has (N-1) D channels). FLOPs for one sequence of length L: input and
output projections 2 L D^2 (N+2), short convolution 2 L (N+1) D k_s, the kernel's own
``flops(L)``, N-1 long convolutions (``globalconv.ops.flops`` of the mode), gates N L D, and the
bias (N-1) D (beta is added to each long filter's offset-0 tap, the same function as adding
beta * z to its output).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv import kernels, ops
from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.mixers.base import TokenMixer, register_mixer, valid_mask
from globalconv.ops.conv import Backend


@register_mixer("hyena")
class Hyena(TokenMixer):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        order: int = 2,
        short_kernel: int = 3,
        backend: Backend = "auto",
        kernel: str = "implicit",
        kernel_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if order < 2 or short_kernel < 1:
            raise ConfigError(
                f"hyena: order must be >= 2 (order N has N-1 long filters) and short_kernel "
                f">= 1, got {order} and {short_kernel}"
            )
        kernel_options = dict(kernel_options or {})
        if kernel_options.get("resample"):
            raise ConfigError(
                "hyena: resampled kernels are not supported here; use kernel=implicit, which "
                "runs at any length"
            )
        if not causal and short_kernel % 2 == 0:
            raise ConfigError(
                f"hyena: a bidirectional (centred) short_kernel must be odd, got {short_kernel}"
            )
        if backend not in ops.BACKENDS:
            raise ConfigError(f"hyena: unknown backend {backend!r}; expected {ops.BACKENDS}")
        self.order = order
        self.backend = backend
        self.mode = "causal" if causal else "full"
        inner = (order + 1) * d_model
        self.inp = nn.Linear(d_model, inner)
        self.short = nn.Conv1d(inner, inner, short_kernel, groups=inner)  # depthwise, k_s taps
        self.short_left = short_kernel - 1 if causal else (short_kernel - 1) // 2
        # one long filter per gate after the first, per channel: a kernel of (N-1) * D channels
        channels = (order - 1) * d_model
        self.filter = kernels.build(
            kernel, d_model=channels, max_len=max_len, mode=self.mode, **kernel_options
        )
        self.length_free = self.filter.length_free
        self.beta = nn.Parameter(torch.randn(order - 1, d_model))  # (N-1, D) bias (skip) terms
        self.out = nn.Linear(d_model, d_model)

    def kernels(self, L: int) -> Tensor:  # (N-1, K, D): K = L causal, 2L-1 full (row L-1+s)
        h = self.filter(L)  # (K, (N-1)*D)
        return h.view(h.shape[0], self.order - 1, self.d_model).transpose(0, 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        if not self.filter.runs_at(L):
            raise SequenceTooLongError(
                f"hyena: sequence length {L} exceeds max_len={self.max_len} of its "
                f"{self.filter.name} kernel; use kernel=implicit or build with max_len >= {L}"
            )
        keep = valid_mask(lengths, L, x.device)
        mask = (lambda t: t) if keep is None else (lambda t: t * keep)
        u = mask(self.inp(x)).transpose(1, 2)  # (B, (N+1) D, L), zero past each sequence's end
        right = self.short.kernel_size[0] - 1 - self.short_left
        u = mask(self.short(F.pad(u, (self.short_left, right))).transpose(1, 2))  # (B, L, (N+1)D)
        v, first, *gates = u.split(self.d_model, dim=-1)  # v, x^1, then x^2 .. x^N
        z = first * v  # before any long filter: products of neighbours the short filter aligned
        h = self.kernels(L)
        for i, gate in enumerate(gates):
            h_i = kernels.with_identity(h[i], self.beta[i], self.mode)  # + beta_i * z
            z = gate * ops.global_conv(
                z, h_i, mode=self.mode, lengths=lengths, backend=self.backend
            )
        return mask(self.out(z))

    def state_size(self, L: int) -> int | None:
        # each long convolution keeps every past input, plus the short conv's window
        if not self.causal:
            return None
        long = (self.order - 1) * L * self.d_model
        return long + (self.short.kernel_size[0] - 1) * self.short.in_channels

    def flops(self, L: int) -> int:
        D, N = self.d_model, self.order
        projections = 2 * L * D * D * (N + 2)
        short = 2 * L * (N + 1) * D * self.short.kernel_size[0]
        long = (N - 1) * ops.flops(self.mode, L, D, self.backend)
        return projections + short + self.filter.flops(L) + long + N * L * D + (N - 1) * D
