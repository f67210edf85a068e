"""The seed's mixer: a global depthwise convolution with a kernel as long as the sequence.

    y[t, c] = sum_{s<n} k[s, c] * x[(t+s) mod n, c] + skip[c] * x[t, c]      (bidirectional)
    y[t, c] = sum_{s<=t} k[s, c] * x[t-s, c]       + skip[c] * x[t, c]      (causal)

with ``padding="zero"`` the bidirectional mixer reads x as 0 outside [0, n) instead of wrapping
(the operator's ``full`` mode, offsets -(n-1)..n-1). No mixing across channels: the block's
feed-forward network does that, and supplies the nonlinearity the seed stacks between
convolutions.

The kernel k comes from a parameterisation in ``globalconv.kernels`` (option ``kernel``, its
options in ``kernel_options``): ``explicit`` (default: the seed's table, one tap per position and
channel, W ~ N(0, 1/max_len)), ``frequency``, ``multiscale`` or ``implicit``. A sequence of length
n < max_len uses the first n taps. A longer one is an error unless the kernel is length-free
(``implicit``) or ``resample=True``, which resamples the kernel of the other kinds to each
sequence's length (see ``globalconv.kernels.base``). skip = 1 at initialisation (S4's D term).

Parameters: the kernel's (explicit: max_len * D) + D. FLOPs for one sequence of length L: see
``globalconv.ops.flops`` (FFT path: three real FFTs and a complex product per channel; direct
path: 2 L^2 D), plus the kernel's own cost (counted once per sequence, as the operator counts the
kernel's FFT), plus D for the skip term, which is added to the kernel's offset-0 tap (the same
function as adding skip * x to the output, without the passes over x and its gradient).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from globalconv import kernels, ops
from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.mixers.base import TokenMixer, register_mixer
from globalconv.ops.conv import Backend


@register_mixer("global_conv")
class GlobalConv(TokenMixer):
    def __init__(
        self,
        d_model: int,
        max_len: int,
        causal: bool = False,
        *,
        backend: Backend = "auto",
        skip: bool = True,
        kernel: str = "explicit",
        kernel_options: dict[str, Any] | None = None,
        resample: bool = False,
        padding: Literal["circular", "zero"] | None = None,
    ) -> None:
        super().__init__(d_model, max_len, causal)
        if backend not in ops.BACKENDS:
            raise ConfigError(f"global_conv: unknown backend {backend!r}; expected {ops.BACKENDS}")
        if padding not in (None, "circular", "zero"):
            raise ConfigError(f"global_conv: padding must be 'circular' or 'zero', got {padding!r}")
        if causal and padding == "circular":
            raise ConfigError(
                "global_conv: a causal convolution cannot wrap; drop padding=circular"
            )
        kernel_options = dict(kernel_options or {})
        if "resample" in kernel_options:
            raise ConfigError("global_conv: set resample on the mixer, not in kernel_options")
        self.backend = backend
        self.mode = "causal" if causal else "full" if padding == "zero" else "circular"
        self.kernel = kernels.build(
            kernel,
            d_model=d_model,
            max_len=max_len,
            mode=self.mode,
            resample=resample,
            **kernel_options,
        )
        self.length_free = self.kernel.length_free or self.kernel.resample
        self.skip = nn.Parameter(torch.ones(d_model)) if skip else None

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        L = x.shape[1]
        if not self.kernel.runs_at(L):
            raise SequenceTooLongError(
                f"global_conv: sequence length {L} exceeds max_len={self.max_len}; set "
                f"resample=True (the {self.kernel.name} kernel is then resampled: "
                f"{self.kernel.resampling}), use kernel=implicit, or build with max_len >= {L}"
            )
        # the skip term rides on the kernel's offset-0 tap: one pass over x, not three
        return kernels.convolve(
            self.kernel, x, lengths=lengths, backend=self.backend, skip=self.skip
        )

    def state_size(self, L: int) -> int | None:
        # generating token L+1 needs every past input: each meets its own tap of the kernel
        return L * self.d_model if self.causal else None

    def flops(self, L: int) -> int:
        skip = self.d_model if self.skip is not None else 0  # added to the kernel, not to y
        conv = ops.flops(self.mode, L, self.d_model, self.backend)
        return conv + self.kernel.flops(L) + skip
