"""Optional GPU path: causal global convolution through FlashFFTConv (Fu, Kumbong, Nguyen and
Re 2023, "FlashFFTConv: Efficient Convolutions for Long Sequences with Tensor Cores").

``global_conv(..., backend="auto")`` hands a call here only when all of these hold, and runs
``torch.fft`` (the ``fft`` backend, float32 inside) otherwise:

* the ``flashfftconv`` package is importable (it is never imported on CPU, nor before such a
  call),
* the input is on CUDA and in bfloat16 or float16 -- FlashFFTConv computes in that precision,
  which is why an explicit ``backend="fft"`` never comes here,
* the mode is ``causal`` (FlashFFTConv's own operation, a zero-padded FFT convolution), and the
  shape fits its documented limits: FFT size 2^k in [256, 4194304], L even (a multiple of 4
  at FFT sizes 512 and 2048), D a multiple of 16 above FFT size 32768.

FlashFFTConv computes y = irfft(rfft(u, n) * rfft(k, n))[:L] for u (B, D, L) and k (D, L) with
n >= 2L, i.e. y[t] = sum_{s<=t} k[s] u[t-s] -- the causal mode exactly.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

# Device types FlashFFTConv runs on (tests point this at "cpu" to check the glue with a stand-in).
DEVICE_TYPES = ("cuda",)
_CONVS: dict[tuple[int, torch.dtype, torch.device], torch.nn.Module] = {}


def fft_size(L: int) -> int:
    """FlashFFTConv's transform size for a causal convolution of length L: 2^k >= 2L."""
    return max(256, 1 << (2 * L - 1).bit_length())


def usable(x: Tensor, mode: str) -> bool:
    """Whether ``backend="auto"`` may run this call through FlashFFTConv."""
    if x.device.type not in DEVICE_TYPES or mode != "causal":
        return False
    if x.dtype not in (torch.bfloat16, torch.float16):
        return False
    _, L, D = x.shape
    n = fft_size(L)
    if n > 4_194_304 or L % 2 or (n in (512, 2048) and L % 4) or (n > 32_768 and D % 16):
        return False
    return _importable()


@functools.cache
def _importable() -> bool:
    try:
        import flashfftconv  # noqa: F401
    except ImportError:
        return False
    return True


def causal_conv(x: Tensor, kernel: Tensor) -> Tensor:
    """y[b,t,c] = sum_{s<=t} kernel[s,c] x[b,t-s,c] for x (B, L, D) and kernel (taps <= L, D)."""
    from flashfftconv import FlashFFTConv

    B, L, D = x.shape
    n = fft_size(L)
    key = (n, x.dtype, x.device)
    if key not in _CONVS:  # one module per size: it holds the size's twiddle factors
        _CONVS[key] = FlashFFTConv(n, dtype=x.dtype).to(x.device)
    k = F.pad(kernel.t().float(), (0, L - kernel.shape[0])).contiguous()  # (D, L), float32
    u = x.transpose(1, 2).contiguous()  # (B, D, L)
    return _CONVS[key](u, k).transpose(1, 2)  # (B, L, D)
