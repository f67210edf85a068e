"""The global depthwise convolution: one kernel per channel, as long as the sequence.

Three modes, for x of shape (B, L, D) and a kernel of shape (K, D) (2K-1 rows for ``full``);
n is a sequence's true length (``lengths[b]``, or L), outputs at t >= n are 0:

* ``circular`` (the seed's operator): ``y[t,c] = sum_{s<n} k[s,c] * x[(t+s) mod n, c]``;
  needs K >= n.
* ``causal``: ``y[t,c] = sum_{s<=t} k[s,c] * x[t-s, c]`` (taps past K count as 0).
* ``full`` (bidirectional, zero padded): ``y[t,c] = sum_s k[K-1+s,c] * x[t+s, c]`` for
  s in [-(K-1), K-1], x read as 0 outside [0, n); needs K >= n.

Three backends compute the same function: ``direct`` is the literal O(L^2 D) depthwise
``conv1d`` with a length-L kernel; ``fft`` is O(L D log L) with real FFTs through ``torch.fft``
(circular at size n, causal and full zero padded to a 5-smooth length so nothing wraps), on a
(B, D, N) copy of the input; ``native`` (CPU only) is the same FFT path as one compiled kernel
that transforms the (B, L, D) input along its length axis where it lies, vectorised across
channels, with the spectral products fused in (``globalconv.ops.native``; transform sizes that
are powers of two, built on first use with the system's C++ compiler); ``pocketfft`` (CPU only)
is the FFT path through ``scipy.fft`` along the strided axis (``globalconv.ops.pocketfft``).
``auto`` picks by device, mode and size from measurement
(see ``resolve_backend``; FlashFFTConv for causal bf16/fp16 CUDA calls when installed, see
``globalconv.ops.flash``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from globalconv.ops import fft, flash, native, pocketfft

Mode = Literal["circular", "causal", "full"]
Backend = Literal["auto", "direct", "fft", "native", "pocketfft"]
MODES = ("circular", "causal", "full")
BACKENDS = ("auto", "direct", "fft", "native", "pocketfft")

# `auto` takes the direct path up to this length. Measured with `globalconv bench op --parts
# crossover` (2-core CPU, B*D from 8 to 4096, 1 and 2 threads): the FFT path was never
# measurably slower than the direct one from L = 2 to 16384 (equal within noise below L = 32 for
# causal on 2 threads) and 1.2-2x faster at L = 8, 2.4-4x at 64, 8-17x at 256; so 0: `auto` is
# the FFT path at every length.
AUTO_DIRECT_MAX_LEN = 0
# On CPU `auto` takes the pocketfft path for transform lengths N up to this, per mode, and the
# torch.fft path above. Measured with `globalconv bench op --parts table --threads 1` (2-core
# Xeon, B=4, D=256, L = 1024-16384, every mode): pocketfft was 1.0-2.4x slower than torch.fft
# forward+backward and 1.1-2.3x forward only at every size, so 0: `auto` is torch.fft everywhere.
AUTO_POCKETFFT_MAX_N = {"circular": 0, "causal": 0, "full": 0}
# Where `auto` takes the native kernel on CPU (see ``native_fits``; measured with `globalconv
# bench op`, README "Speed and memory"): at least this many channels (a strip is 32 wide in
# float32; narrower inputs waste lanes), transforms of at most this size (past it a strip's
# buffers leave the cache), and for the zero-padded modes a power-of-two size at most this
# factor above the fft path's 5-smooth one (its saved spectra grow with it).
AUTO_NATIVE_MIN_CHANNELS = 32
AUTO_NATIVE_MAX_N = 1 << 15
AUTO_NATIVE_MAX_GROWTH = 1.25


def global_conv(
    x: Tensor,
    kernel: Tensor,
    *,
    mode: Mode = "circular",
    lengths: Tensor | None = None,
    backend: Backend = "auto",
) -> Tensor:
    """Global depthwise convolution of x (B, L, D) with kernel (K, D); returns (B, L, D).

    See the module docstring for the exact formula of each mode. ``lengths`` (B,) holds each
    sequence's true length n in [1, L]: its output depends on its first n positions only and is
    0 from n on. bf16/fp16 inputs are computed in float32 and returned in their own dtype.
    """
    _check(x, kernel, mode, lengths, backend)
    B, L, D = x.shape
    if lengths is not None and bool((lengths == L).all()):
        lengths = None
    if backend == "auto" and flash.usable(x, mode):  # CUDA, bf16/fp16, causal: FlashFFTConv
        if lengths is not None:
            x = _zero_padding(x, lengths)
        y = flash.causal_conv(x, _taps_within(kernel, mode, kernel.shape[0], L))
        return y if lengths is None else y * _valid_mask(lengths, L, y.dtype)
    backend = resolve_backend(backend, L, mode, x.device, channels=D)

    out_dtype = x.dtype
    dtype = torch.promote_types(torch.promote_types(x.dtype, kernel.dtype), torch.float32)
    x = x.to(dtype)
    kernel = kernel.to(dtype)
    if lengths is not None:
        x = _zero_padding(x, lengths)  # garbage in the padding (NaN, inf) must not leak in

    # computed in `dtype` whatever autocast says: it would push the direct path's conv1d to bf16
    with torch.autocast(x.device.type, enabled=False):
        spectral = _SPECTRAL.get(backend)
        if mode == "circular" and backend == "direct":
            y = _circular_direct(x, kernel, lengths)
        elif mode == "circular":
            y = _circular_fft(x, kernel, lengths, spectral)
        else:
            K = kernel.shape[0] if mode == "causal" else (kernel.shape[0] + 1) // 2
            kernel = _taps_within(kernel, mode, K, L)
            if backend == "direct":
                y = _linear_direct(x, kernel, mode)
            else:
                y = _linear_fft(x, kernel, mode, spectral)
            if lengths is not None:
                y = y * _valid_mask(lengths, L, y.dtype)
    return y.to(out_dtype)


# ---------------------------------------------------------------------------------------------
# input checks


def _check(x: Tensor, kernel: Tensor, mode: str, lengths: Tensor | None, backend: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend in ("pocketfft", "native") and isinstance(x, Tensor) and x.device.type != "cpu":
        raise ValueError(
            f"backend {backend!r} runs on CPU only, got x on {x.device}; use backend='fft'"
        )
    if backend == "native":
        native.require()
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must have shape (B, L, D), got {shape}")
    if not isinstance(kernel, Tensor) or kernel.dim() != 2:
        shape = tuple(kernel.shape) if isinstance(kernel, Tensor) else type(kernel).__name__
        raise ValueError(f"kernel must have shape (K, D), got {shape}")
    if not x.is_floating_point() or not kernel.is_floating_point():
        raise ValueError(
            f"x and kernel must be floating point, got {x.dtype} and {kernel.dtype}; "
            "cast with .float()"
        )
    if x.device != kernel.device:
        raise ValueError(
            f"x is on {x.device} but kernel on {kernel.device}; move both to one device"
        )
    B, L, D = x.shape
    if L == 0 or B == 0 or D == 0:
        raise ValueError(
            f"x must have at least one sequence, one position and one channel, got {tuple(x.shape)}"
        )
    if kernel.shape[1] != D:
        raise ValueError(
            f"kernel has {kernel.shape[1]} channels but x has D={D}; expected kernel (K, {D})"
        )
    n_max = L
    if lengths is not None:
        if not isinstance(lengths, Tensor) or lengths.shape != (B,):
            shape = tuple(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
            raise ValueError(f"lengths must have shape ({B},) matching the batch, got {shape}")
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
        if lengths.device != x.device:
            raise ValueError(f"lengths is on {lengths.device} but x on {x.device}")
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > L:
            raise ValueError(f"lengths must lie in [1, {L}] (the padded length), got [{lo}, {hi}]")
        n_max = hi
    K = kernel.shape[0]
    if mode == "circular" and K < n_max:
        raise ValueError(
            f"circular mode needs a kernel of at least n={n_max} taps, got K={K}; "
            f"pass a kernel of shape ({n_max}, {D}) or longer"
        )
    if mode == "full":
        if K % 2 == 0:
            raise ValueError(f"full mode needs a kernel of 2K-1 (odd) rows, got {K}")
        if (K + 1) // 2 < n_max:
            raise ValueError(
                f"full mode needs K >= n={n_max}, i.e. a kernel of {2 * n_max - 1} rows, got {K}"
            )


def _valid_mask(lengths: Tensor, L: int, dtype: torch.dtype) -> Tensor:
    """(B, L, 1) mask, 1 where t < lengths[b]."""
    positions = torch.arange(L, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).to(dtype)[..., None]


def _zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """x with 0 at t >= lengths[b]: selected, not multiplied, since NaN * 0 and inf * 0 are NaN
    and the FFT would spread them over the whole sequence."""
    positions = torch.arange(x.shape[1], device=x.device)
    return x.masked_fill((positions[None, :] >= lengths[:, None])[..., None], 0)


def _taps_within(kernel: Tensor, mode: str, K: int, L: int) -> Tensor:
    """Drop the taps that can only ever meet zero padding (|offset| >= L)."""
    keep = min(K, L)
    if mode == "causal":
        return kernel[:keep]
    return kernel[K - keep : K - 1 + keep]


def resolve_backend(
    backend: Backend,
    L: int,
    mode: Mode = "circular",
    device: torch.device | str = "cpu",
    channels: int | None = None,
) -> Literal["direct", "fft", "native", "pocketfft"]:
    """The backend ``auto`` stands for at length L, in this mode, on this device, for inputs
    of ``channels`` channels (None: not known, taken as enough for the native kernel)."""
    if backend != "auto":
        return backend
    if L <= AUTO_DIRECT_MAX_LEN:
        return "direct"
    if torch.device(device).type != "cpu":
        return "fft"
    # torch.compile cannot trace into a ctypes call: compiled graphs keep torch.fft
    compiling = torch.compiler.is_compiling()
    if not compiling and native_fits(mode, L, channels) and native.available():
        return "native"
    return "pocketfft" if fft_size(mode, L) <= AUTO_POCKETFFT_MAX_N[mode] else "fft"


def native_fits(mode: Mode, L: int, channels: int | None = None) -> bool:
    """Whether ``auto`` takes the native kernel (on CPU, where it builds) at length L.

    It transforms powers of two. Circular mode transforms L itself, so it fits where L is one
    (elsewhere ``backend='native'`` pads to 2L as for ragged lengths, slower than torch.fft at
    size L). The zero-padded modes take the next power of two, while that is at most
    AUTO_NATIVE_MAX_GROWTH times the fft path's 5-smooth size. Both need at most
    AUTO_NATIVE_MAX_N points and at least AUTO_NATIVE_MIN_CHANNELS channels (when known). The
    sizes judged are those of full-length sequences with full-length kernels: ragged circular
    inputs transform 2L, and a causal kernel shorter than L pads to less."""
    if channels is not None and channels < AUTO_NATIVE_MIN_CHANNELS:
        return False
    if mode == "circular":
        return native.supports(L) and L <= AUTO_NATIVE_MAX_N
    size, fft_path = native.transform_size(2 * L - 1), fast_fft_size(2 * L - 1)
    return size <= AUTO_NATIVE_MAX_N and size <= AUTO_NATIVE_MAX_GROWTH * fft_path


def fft_size(mode: Mode, L: int) -> int:
    """Transform length the fft backend uses for full-length sequences of length L."""
    return L if mode == "circular" else fast_fft_size(2 * L - 1)


def flops(mode: Mode, L: int, D: int, backend: Backend = "auto") -> int:
    """Analytic forward FLOPs of one sequence (multiply-add = 2; a real FFT of size n counts
    2.5 n log2 n; a complex multiply 6). Kernel transform included, once per sequence."""
    if backend == "direct" or (backend == "auto" and L <= AUTO_DIRECT_MAX_LEN):
        return 2 * L * L * D if mode != "full" else 2 * L * (2 * L - 1) * D
    n = fft_size(mode, L)
    return int(D * (3 * rfft_flops(n) + 6 * (n // 2 + 1)))


def rfft_flops(n: int) -> float:
    """FLOPs convention for one real FFT (or inverse) of size n: 2.5 n log2 n."""
    return 2.5 * n * math.log2(n) if n > 1 else 0.0


def fast_fft_size(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFTs are fastest at sizes with small prime factors)."""
    m = max(int(n), 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


# ---------------------------------------------------------------------------------------------
# direct backend: the seed's operator written literally as a depthwise conv1d


def _depthwise_conv1d(x_bdl: Tensor, kernel_kd: Tensor) -> Tensor:
    """out[b,c,t] = sum_s kernel[s,c] * x[b,c,t+s] (cross-correlation, no padding)."""
    D = x_bdl.shape[1]
    return F.conv1d(x_bdl, kernel_kd.t().unsqueeze(1), groups=D)


def _circular_direct(x: Tensor, kernel: Tensor, lengths: Tensor | None) -> Tensor:
    B, L, D = x.shape
    if lengths is None:
        groups = [(L, slice(None))]
    else:
        groups = [(int(n), (lengths == n).nonzero().squeeze(1)) for n in lengths.unique()]
    y = x.new_zeros(B, L, D)
    for n, rows in groups:
        xn = x[rows, :n].transpose(1, 2)  # (b, D, n)
        xn = F.pad(xn, (0, n - 1), mode="circular") if n > 1 else xn  # x[(t+s) mod n]
        y[rows, :n] = _depthwise_conv1d(xn, kernel[:n]).transpose(1, 2)
    return y


def _linear_direct(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    taps = kernel.shape[0]
    xt = x.transpose(1, 2)  # (B, D, L)
    if mode == "causal":  # y[t] = sum_s k[s] x[t-s]: correlate with the flipped kernel
        xt = F.pad(xt, (taps - 1, 0))
        kernel = kernel.flip(0)
    else:
        half = (taps - 1) // 2
        xt = F.pad(xt, (half, half))
    return _depthwise_conv1d(xt, kernel).transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# fft, native and pocketfft backends: the same formulas through each one's spectral_conv


class _Spectral(NamedTuple):
    conv: Callable[..., Tensor]  # spectral_conv(x, kernel, n_fft, correlate=, out_len=)
    size: Callable[[int], int]  # the transform size it takes for at least n points
    takes: Callable[[int], bool]  # whether it transforms exactly n points


_SPECTRAL = {
    "fft": _Spectral(fft.spectral_conv, fast_fft_size, lambda n: True),
    "native": _Spectral(native.spectral_conv, native.transform_size, native.supports),
    "pocketfft": _Spectral(pocketfft.spectral_conv, fast_fft_size, lambda n: True),
}


def _circular_fft(x: Tensor, kernel: Tensor, lengths: Tensor | None, spectral: _Spectral) -> Tensor:
    B, L, D = x.shape
    if lengths is None and spectral.takes(L):  # cross-correlation at size L: Y = conj(K) * X
        return spectral.conv(x, kernel[:L], L, correlate=True, out_len=L)
    # Ragged lengths (or a size the transform does not take): each sequence wraps at its own n.
    # With x zero beyond n and the kernel cut to n taps, the linear correlation
    # u[m] = sum_{s<n} k[s] x[m+s] gives y[t] = u[t] + u[t-n] (the wrapped part), for t < n.
    N = spectral.size(2 * L)
    taps = torch.arange(L, device=x.device)
    T = min(kernel.shape[0], L)  # >= every n (checked)
    if lengths is None:
        u = spectral.conv(x, kernel[:T], N, correlate=True, out_len=N)  # (B, N, D), u[m mod N]
        return u[:, :L] + u[:, (taps - L) % N]
    k = kernel[:T].unsqueeze(0) * (taps[None, :T] < lengths[:, None]).to(x.dtype)[..., None]
    u = spectral.conv(x, k, N, correlate=True, out_len=N)
    t = taps[None, :].expand(B, L)
    wrapped = (t - lengths[:, None]) % N
    index = lambda i: i[..., None].expand(B, L, D)  # noqa: E731
    y = u[:, :L] + torch.gather(u, 1, index(wrapped))
    return y * _valid_mask(lengths, L, y.dtype)


def _linear_fft(x: Tensor, kernel: Tensor, mode: str, spectral: _Spectral) -> Tensor:
    # Zero padded to N, an output t < L reads x at t - s (causal, s < taps) or t + s (full,
    # |s| <= h): those reads wrap around onto x's zero tail, never onto x, once N >= L + taps - 1
    # (causal) or N >= L + h (full), so the circular result is the linear one.
    L = x.shape[1]
    taps = kernel.shape[0]
    if mode == "causal":  # linear convolution
        return spectral.conv(x, kernel, spectral.size(L + taps - 1), correlate=False, out_len=L)
    # full: correlation with offsets -h..h, h = (taps-1)/2; rotate so offset 0 sits at index 0
    half = (taps - 1) // 2
    N = spectral.size(L + half)
    rotated = torch.roll(F.pad(kernel, (0, 0, 0, N - taps)), -half, dims=0)
    return spectral.conv(x, rotated, N, correlate=True, out_len=L)
