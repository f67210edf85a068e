"""The token-mixer interface and its registry.

A token mixer maps (B, L, D) to (B, L, D) and is the only part of a Transformer block that
moves information between positions. A new mixer is one new file::

    @register_mixer("my_mixer")
    class MyMixer(TokenMixer):
        def __init__(self, d_model, max_len, causal=False, *, my_option=3): ...
        def forward(self, x, lengths=None): ...
        def flops(self, L): ...

and one import line in ``globalconv/mixers/__init__.py``. Options are keyword-only arguments
of ``__init__``; ``build`` rejects unknown ones with the list of allowed ones.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.registry import Registry
from globalconv.registry import check_options as check_typed_options

_REGISTRY: Registry[type[TokenMixer]] = Registry("mixer")


class TokenMixer(nn.Module):
    """Base class: ``forward(x, lengths=None)`` maps (B, L, D) to (B, L, D).

    Contract: with ``lengths`` (B,), a sequence's outputs at t < n depend only on its own first
    n positions, and outputs at t >= n are 0. With ``causal=True``, output t depends on x[:t+1].
    """

    name: ClassVar[str] = ""
    supports_causal: ClassVar[bool] = True
    supports_bidirectional: ClassVar[bool] = True
    length_free: ClassVar[bool] = False  # True: runs at any length, max_len is only a hint
    # True: blind to order without position encodings, so a model adds them by default
    # (model.positions unset)
    needs_positions: ClassVar[bool] = False

    def __init__(self, d_model: int, max_len: int, causal: bool = False) -> None:
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"d_model and max_len must be >= 1, got {d_model} and {max_len}")
        self.d_model = d_model
        self.max_len = max_len
        self.causal = causal
        self.register_forward_pre_hook(_check_input, with_kwargs=True)  # every mixer, one check

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # (B, L, D)
        raise NotImplementedError

    def flops(self, L: int) -> int:
        """Analytic forward FLOPs for one sequence of length L (a multiply-add is 2 FLOPs)."""
        raise NotImplementedError

    def state_size(self, L: int) -> int | None:
        """Floats a causal mixer keeps per sequence between generation steps after L tokens (its
        cache or recurrent state); None for bidirectional mixers and where not reported."""
        return None

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_length(self, L: int) -> None:
        if L > self.max_len:
            raise SequenceTooLongError(
                f"{self.name}: sequence length {L} exceeds max_len={self.max_len}; "
                f"build the mixer with max_len >= {L}"
            )


def _check_input(mixer: TokenMixer, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    """The contract's input, checked before any mixer's forward: x (B, L, D) floating point with
    B, L >= 1 and D = d_model, lengths (B,) integers in [1, L]; else a ``ValueError``. The
    padding of x is then set to 0, so that no value there (NaN and inf included, which survive
    any multiplication by a mask) can reach a sequence's outputs, in whatever mixer."""
    x = args[0] if args else kwargs.get("x")
    lengths = args[1] if len(args) > 1 else kwargs.get("lengths")
    name = mixer.name or type(mixer).__name__
    if not isinstance(x, Tensor) or x.dim() != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: x must have shape (B, L, {mixer.d_model}), got {shape}")
    B, L, D = x.shape
    if B == 0 or L == 0 or D != mixer.d_model:
        raise ValueError(
            f"{name}: x must have shape (B, L, {mixer.d_model}) with B, L >= 1, "
            f"got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: x must be floating point, got {x.dtype}; cast with .float()")
    if lengths is None:
        return
    if not isinstance(lengths, Tensor) or lengths.shape != (B,):
        shape = tuple(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"{name}: lengths must have shape ({B},) matching the batch, got {shape}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"{name}: lengths must be an integer tensor, got {lengths.dtype}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > L:
        raise ValueError(
            f"{name}: lengths must lie in [1, {L}] (the padded length), got [{lo}, {hi}]"
        )
    if lo == L:
        return None
    padding = torch.arange(L, device=x.device)[None, :] >= lengths[:, None]  # (B, L)
    x = x.masked_fill(padding[..., None], 0)
    if args:
        return (x, *args[1:]), kwargs
    return args, {**kwargs, "x": x}


register_mixer = _REGISTRY.register  # class decorator: @register_mixer("name")


def available() -> list[str]:
    """Names of the registered mixers."""
    return _REGISTRY.available()


def get(name: str) -> type[TokenMixer]:
    return _REGISTRY.get(name)


def _option_functions(name: str) -> list:
    """The ``__init__``s whose keyword-only parameters are the mixer's options: its own, then
    its parents' while each passes ``**options`` on."""
    functions = []
    for cls in get(name).__mro__:
        if "__init__" not in vars(cls):
            continue
        functions.append(cls.__init__)
        params = inspect.signature(cls.__init__).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return functions


def options(name: str) -> dict[str, Any]:
    """The keyword options a mixer accepts, with their defaults."""
    found: dict[str, Any] = {}
    for function in _option_functions(name):
        for p in inspect.signature(function).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                found.setdefault(p.name, p.default)
    return found


def check_options(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The mixer's options validated against the types of its signature (``ValueError`` naming
    the option otherwise); a ``kernel_options`` beside a ``kernel`` option is checked against
    that kernel's own options."""
    checked = check_typed_options(f"mixer {name!r}", _option_functions(name), opts)
    if "kernel_options" in checked:
        from globalconv import kernels

        kind = checked.get("kernel", options(name).get("kernel"))
        if isinstance(kind, str):
            kernels.check_options(kind, checked["kernel_options"] or {})
    return checked


def build(
    name: str, *, d_model: int, max_len: int, causal: bool = False, **opts: Any
) -> TokenMixer:
    """Build the mixer registered as ``name``; unknown or mistyped options raise ``ValueError``."""
    cls = get(name)
    opts = check_options(name, opts)
    if causal and not cls.supports_causal:
        raise ConfigError(f"mixer {name!r} cannot be causal; use it in bidirectional tasks")
    if not causal and not cls.supports_bidirectional:
        raise ConfigError(f"mixer {name!r} is causal only; use it in causal tasks")
    return cls(d_model, max_len, causal, **opts)


def valid_mask(lengths: Tensor | None, L: int, device: torch.device) -> Tensor | None:
    """(B, L, 1) boolean mask of real positions, or None when every position is real."""
    if lengths is None:
        return None
    return (torch.arange(L, device=device)[None, :] < lengths[:, None])[..., None]
