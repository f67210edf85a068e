"""The operator: global depthwise convolution (direct and FFT paths)."""

from globalconv.ops.global_conv import BACKENDS, MODES, fast_fft_size, global_conv

__all__ = ["BACKENDS", "MODES", "fast_fft_size", "global_conv"]
