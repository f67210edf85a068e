"""The global depthwise convolution and the ``global_conv`` mixer in one file, torch only.

A reference to read beside the paper and to check the package against
(``tests/test_reference.py``): every sum is written out, nothing is fast.

The operator. x (B, L, D), one kernel per channel k (K, D); a sequence of true length n <= L
(its first n positions are real, the rest padding) is mixed over its own n positions only:

    circular   y[t, c] = sum_{s=0}^{n-1}      k[s, c]       * x[(t + s) mod n, c]   (K >= n)
    causal     y[t, c] = sum_{s=0}^{t}        k[s, c]       * x[t - s, c]
    full       y[t, c] = sum_{s=-(n-1)}^{n-1} k[K - 1 + s, c] * x[t + s, c],  x = 0 outside [0, n)

for t < n, and y[t, c] = 0 for t >= n. In ``full`` the kernel has 2K - 1 rows, row K - 1 + s
for offset s. Circular mode is a circular cross-correlation, so by the convolution theorem
(k real) it is, per channel, y = IDFT_n(conj(DFT_n(k[:n])) * DFT_n(x[:n])): O(n log n)
instead of O(n^2) (``circular_fft`` below).

The mixer. A table of taps W (R, D), R = max_len (2 max_len - 1 for zero padding), drawn
W ~ N(0, 1/R); a sequence of length n uses its first n taps (the centre 2n - 1 rows in full);
plus a per-channel skip term, 1 at the start:

    mixer(x)[t, c] = operator(x, W)[t, c] + skip[c] * x[t, c]        (t < n; 0 from n on)

Bidirectional mixers wrap (circular) unless padding="zero" (full); causal mixers use causal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def global_conv(x: Tensor, k: Tensor, mode: str = "circular", lengths: Tensor | None = None):
    """The operator, literally: x (B, L, D), k (K, D) or (2K-1, D) in full; -> (B, L, D)."""
    B, L, D = x.shape
    n_of = [L] * B if lengths is None else [int(n) for n in lengths]
    y = torch.zeros_like(x)  # (B, L, D): zero past each sequence's end
    for b, n in enumerate(n_of):
        u = x[b, :n]  # (n, D): the sequence without its padding
        K = (k.shape[0] + 1) // 2 if mode == "full" else k.shape[0]
        for t in range(n):
            if mode == "circular":  # offsets 0..n-1, read around the end
                y[b, t] = (k[:n] * u[(t + torch.arange(n)) % n]).sum(0)
            elif mode == "causal":  # offsets 0..t, read backwards
                s = torch.arange(min(t + 1, K))
                y[b, t] = (k[s] * u[t - s]).sum(0)
            else:  # full: offsets -(n-1)..n-1, zero outside the sequence
                s = torch.arange(-(n - 1), n)
                inside = (t + s >= 0) & (t + s < n)
                y[b, t] = (k[K - 1 + s[inside]] * u[t + s[inside]]).sum(0)
    return y


def circular_fft(x: Tensor, k: Tensor) -> Tensor:
    """Circular mode over the full length L by the convolution theorem; x (B, L, D), k (K>=L, D)."""
    L = x.shape[1]
    spectrum = torch.conj(torch.fft.rfft(k[:L], dim=0)) * torch.fft.rfft(x, dim=1)  # (B, L//2+1, D)
    return torch.fft.irfft(spectrum, n=L, dim=1)  # (B, L, D)


class GlobalConvMixer(nn.Module):
    """The ``global_conv`` mixer with its default (explicit) kernel: (B, L, D) -> (B, L, D)."""

    def __init__(self, d_model: int, max_len: int, causal: bool = False, padding: str = "circular"):
        super().__init__()
        self.mode = "causal" if causal else "full" if padding == "zero" else "circular"
        rows = 2 * max_len - 1 if self.mode == "full" else max_len
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(rows, d_model) / math.sqrt(rows))  # W (R, D)
        self.skip = nn.Parameter(torch.ones(d_model))  # (D,)

    def taps(self, n: int) -> Tensor:  # the kernel for length n: (n, D), or (2n-1, D) in full
        if n > self.max_len:
            raise ValueError(f"length {n} exceeds max_len={self.max_len}")
        if self.mode == "full":
            return self.weight[self.max_len - n : self.max_len - 1 + n]
        return self.weight[:n]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        B, L, D = x.shape
        n = torch.full((B,), L) if lengths is None else lengths  # (B,)
        real = (torch.arange(L)[None, :] < n[:, None])[..., None]  # (B, L, 1)
        x = x.masked_fill(~real, 0)  # whatever the padding holds stays out
        return global_conv(x, self.taps(L), self.mode, lengths) + self.skip * x * real
