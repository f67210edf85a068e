"""globalconv: can self-attention be replaced by a global depthwise convolution?"""

from globalconv.ops import global_conv

__version__ = "0.1.0"
__all__ = ["__version__", "global_conv"]
