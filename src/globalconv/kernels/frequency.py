"""The frequency kernel: a learnable complex filter in the rfft domain, as in GFNet (Rao et al.
2021, "Global Filter Networks for Image Classification"), here in one dimension:

    H = complex(weight[..., 0], weight[..., 1])     # (N//2+1, D), N = K or 2K-1 (full)
    k = irfft(H, n=N)                               # (N, D) taps; in full mode rolled so that
                                                    # offset s sits at row K-1+s

The operator then computes ``y = irfft(rfft(x) * conj(rfft(k)))``, i.e. GFNet's global filter
(with conj(H) in the role of its filter). Every real N-tap kernel is irfft of exactly one H, so in
circular mode this is the same function class as the explicit kernel: ``H = rfft(W)`` converts one
into the other (tests/test_kernels.py checks outputs agree to float tolerance). What differs is the
parameterisation the optimiser sees (and weight decay's effect): one weight per frequency.

Initialisation: H = rfft(W0) with W0 ~ N(0, 1/N), so the taps start distributed exactly as the
explicit kernel's. Parameters: 2 (N//2+1) D, of which the imaginary parts of the 0 and (N even)
N/2 bins are ignored by irfft: N*D effective, as the explicit kernel.

Resampling (``resample=True``, length n != K), as GFNet does for a new resolution: the filter is
interpolated linearly (real and imaginary parts) over relative frequency f/N onto the N' bins of
the new size, then irfft at N'. The gain at frequency 0 is kept, and a short kernel keeps its
shape at the same absolute offsets (its response is smooth in frequency), unlike the time-domain
stretch of explicit/multiscale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv.kernels.base import Kernel, lerp_rows, register_kernel
from globalconv.ops import rfft_flops


@register_kernel("frequency")
class FrequencyKernel(Kernel):
    resampling = "the rfft-domain filter interpolated linearly over relative frequency"

    def setup(self) -> None:
        N = self.rows(self.max_len)
        taps = torch.randn(N, self.d_model) / math.sqrt(N)
        H = torch.fft.rfft(taps, dim=0)  # (N//2+1, D)
        self.weight = nn.Parameter(torch.view_as_real(H).contiguous())  # (N//2+1, D, 2)

    def filter(self) -> Tensor:
        """The complex filter H, (N//2+1, D)."""
        return torch.view_as_complex(self.weight)

    @classmethod
    def from_taps(cls, taps: Tensor, mode: str = "circular", **options) -> FrequencyKernel:
        """The frequency kernel whose taps are ``taps`` (rows(K), D): H = rfft(taps)."""
        rows, D = taps.shape
        K = (rows + 1) // 2 if mode == "full" else rows
        kernel = cls(D, K, mode, **options).to(taps.dtype)
        if mode == "full":  # row K-1+s is offset s; the transform wants offset s at index s mod N
            taps = torch.roll(taps, -(K - 1), dims=0)
        H = torch.fft.rfft(taps.detach(), dim=0)
        with torch.no_grad():
            kernel.weight.copy_(torch.view_as_real(H))
        return kernel

    def native(self) -> Tensor:
        return self._taps(self.filter(), self.max_len)

    def resampled(self, n: int) -> Tensor:
        N, M = self.rows(self.max_len), self.rows(n)
        bins = torch.arange(M // 2 + 1, device=self.weight.device, dtype=torch.float64)
        where = (bins * N / M).clamp(max=N // 2)  # the same relative frequency f/N on the old grid
        H = torch.view_as_complex(lerp_rows(self.weight, where, wrap=False).contiguous())
        return self._taps(H, n)

    def _taps(self, H: Tensor, n: int) -> Tensor:
        k = torch.fft.irfft(H, n=self.rows(n), dim=0)  # (N, D), offset s at index s mod N
        return torch.roll(k, n - 1, dims=0) if self.mode == "full" else k

    def flops(self, n: int) -> int:
        return int(self.d_model * rfft_flops(self.rows(n)))
