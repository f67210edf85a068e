"""The operator: global depthwise convolution (direct and FFT paths)."""

from globalconv.ops.conv import (
    BACKENDS,
    MODES,
    fast_fft_size,
    fft_size,
    flops,
    global_conv,
    resolve_backend,
    rfft_flops,
)

__all__ = [
    "BACKENDS",
    "MODES",
    "fast_fft_size",
    "fft_size",
    "flops",
    "global_conv",
    "resolve_backend",
    "rfft_flops",
]
