"""Kernel parameterisations for global convolutions: ``build(name, d_model=..., max_len=...,
mode=...)`` returns a module whose ``kernel(n)`` is the (n, D) kernel ((2n-1, D) in full mode).

Each parameterisation lives in its own file and registers itself; importing it here is all it
takes. See ``kernels/base.py`` for the interface and the length rules.
"""

from globalconv.kernels import explicit, frequency, implicit, multiscale  # noqa: F401
from globalconv.kernels.base import (
    Kernel,
    available,
    build,
    check_options,
    convolve,
    get,
    options,
    register_kernel,
    with_identity,
)

__all__ = [
    "Kernel",
    "available",
    "build",
    "check_options",
    "convolve",
    "get",
    "options",
    "register_kernel",
    "with_identity",
]
