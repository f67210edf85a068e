"""globalconv: can self-attention be replaced by a global depthwise convolution?"""

__version__ = "0.1.0"
__all__ = ["__version__", "global_conv"]


def __getattr__(name: str):
    # torch loads on first use, so that `globalconv --help` and a Ctrl-C during start-up stay
    # in the command line's hands
    if name == "global_conv":
        from globalconv.ops import global_conv

        return global_conv
    raise AttributeError(f"module 'globalconv' has no attribute {name!r}")
