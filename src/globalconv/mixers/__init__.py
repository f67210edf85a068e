"""Token mixers behind one interface: ``build(name, d_model=..., max_len=..., causal=...)``.

Each mixer lives in its own file and registers itself; importing it here is all it takes.
"""

from globalconv.mixers import (  # noqa: F401  (imported to register; one line per mixer)
    attention,
    baseconv,
    fnet,
    gated_global_conv,
    global_conv,
    hyena,
    lightconv,
    mlp_mixer,
    synthesizer,
)
from globalconv.mixers.base import (
    TokenMixer,
    available,
    build,
    check_options,
    get,
    options,
    register_mixer,
    valid_mask,
)

__all__ = [
    "TokenMixer",
    "available",
    "build",
    "check_options",
    "get",
    "options",
    "register_mixer",
    "valid_mask",
]
