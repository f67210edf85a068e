"""The kernel interface, its registry, and the helpers every parameterisation shares.

A kernel module holds the parameters of a per-channel kernel and produces the kernel on demand
for the length at hand, in the layout ``globalconv.ops.global_conv`` takes for its mode::

    kernel = kernels.build("explicit", d_model=D, max_len=K, mode="circular")
    k = kernel(n)   # (n, D): tap s at row s           (modes "circular", "causal")
                    # (2n-1, D): offset s at row n-1+s (mode "full")
    y = kernels.convolve(kernel, x, lengths=lengths)   # global_conv(x, kernel(n), mode=...)

A new parameterisation is one file::

    @register_kernel("my_kernel")
    class MyKernel(Kernel):
        def setup(self, *, my_option=3): ...        # create parameters; options keyword-only
        def native(self): ...                       # the kernel at max_len, (rows(max_len), D)

plus one import line in ``kernels/__init__.py``; the contract tests in tests/test_kernels.py
then run on it. A length-free kind sets ``length_free = True`` and overrides ``taps(n)``.

Lengths. Without resampling a kernel is a table over absolute offsets: ``kernel(n)`` for n < K
(K = max_len) is the first n taps of ``kernel(K)`` (its centre 2n-1 rows in ``full`` mode), so the
operator's padding semantics hold as they are, and n > K is a ``SequenceTooLongError`` (a
``ValueError``), never a silent truncation. Length-free kinds (``implicit``) evaluate at the new
positions. With ``resample=True`` the other kinds produce ``kernel(n)`` for every n != K from
their K-tap kernel by their own resampling rule (``resampling`` names it), keeping the kernel's
sum, i.e. its gain at frequency 0; the kernel then depends on n itself, so ``convolve`` gives
each sequence the kernel of its own true length.

Options every kind takes: ``resample`` (above), ``lr`` and ``weight_decay`` (optimiser hints:
stored as ``param._optim = {"lr": ..., "weight_decay": ...}`` on each of the kernel's parameters,
only the keys that are set, and honoured by ``globalconv.train.parameter_groups``).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from globalconv import ops
from globalconv.core.errors import ConfigError, SequenceTooLongError
from globalconv.ops.conv import Backend, Mode
from globalconv.registry import Registry
from globalconv.registry import check_options as check_typed_options

_REGISTRY: Registry[type[Kernel]] = Registry("kernel")


class Kernel(nn.Module):
    """Base class: ``kernel(n)`` is the (rows(n), D) kernel for sequences of length n."""

    name: ClassVar[str] = ""
    length_free: ClassVar[bool] = False  # True: kernel(n) exists for every n, no resampling
    resampling: ClassVar[str] = ""  # how resample=True maps the K-tap kernel to n taps

    def __init__(
        self,
        d_model: int,
        max_len: int,
        mode: Mode = "circular",
        *,
        resample: bool = False,
        lr: float | None = None,
        weight_decay: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if d_model < 1 or max_len < 1:
            raise ValueError(f"d_model and max_len must be >= 1, got {d_model} and {max_len}")
        if mode not in ops.MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(ops.MODES)}")
        if lr is not None and not lr > 0:
            raise ConfigError(f"{self.name} kernel: lr must be > 0, got {lr}")
        if weight_decay is not None and not weight_decay >= 0:
            raise ConfigError(f"{self.name} kernel: weight_decay must be >= 0, got {weight_decay}")
        self.d_model = d_model
        self.max_len = max_len
        self.mode = mode
        self.resample = bool(resample)
        self.setup(**options)
        # Optimiser hints ride on the parameters themselves, so any trainer can group by them.
        hints = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}
        if hints:
            for p in self.parameters():
                p._optim = dict(hints)
        self.optim_hints = hints

    # -- what a kind implements ------------------------------------------------------------

    def setup(self) -> None:
        """Create the parameters (kind-specific options arrive here as keyword arguments)."""
        raise NotImplementedError

    def native(self) -> Tensor:
        """The kernel at max_len: (rows(max_len), D)."""
        raise NotImplementedError

    def resampled(self, n: int) -> Tensor:
        """The kernel resampled to length n != max_len: (rows(n), D)."""
        raise NotImplementedError

    def taps(self, n: int) -> Tensor:
        """The kernel at length n <= max_len without resampling: a crop of ``native()``."""
        return crop(self.native(), n, self.mode)

    def flops(self, n: int) -> int:
        """FLOPs to produce the kernel for length n (0 for a stored table)."""
        return 0

    # -- shared -----------------------------------------------------------------------------

    def rows(self, n: int) -> int:
        return 2 * n - 1 if self.mode == "full" else n

    @property
    def length_dependent(self) -> bool:
        """True when kernel(n) is not the first n taps of kernel(L) for n < L (resampling)."""
        return self.resample and not self.length_free

    def runs_at(self, n: int) -> bool:
        return n <= self.max_len or self.length_free or self.resample

    def forward(self, n: int) -> Tensor:  # -> (rows(n), D)
        n = int(n)
        if n < 1:
            raise ValueError(f"{self.name} kernel: length must be >= 1, got {n}")
        if self.length_free:
            return self.taps(n)
        if self.resample and n != self.max_len:
            return self.resampled(n)
        if n > self.max_len:
            raise SequenceTooLongError(
                f"{self.name} kernel: sequence length {n} exceeds max_len={self.max_len}; "
                f"set resample=True to resample the kernel ({self.resampling}) "
                f"or build with max_len >= {n}"
            )
        return self.taps(n)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, max_len={self.max_len}, mode={self.mode}, "
            f"resample={self.resample}"
        )


# ---------------------------------------------------------------------------------------------
# registry


register_kernel = _REGISTRY.register  # class decorator: @register_kernel("name")


def available() -> list[str]:
    """Names of the registered kernel parameterisations."""
    return _REGISTRY.available()


def get(name: str) -> type[Kernel]:
    return _REGISTRY.get(name)


def options(name: str) -> dict[str, Any]:
    """The options a kind accepts (its own, then the common ones), with their defaults."""
    own = inspect.signature(get(name).setup).parameters.values()
    common = inspect.signature(Kernel.__init__).parameters.values()
    return {p.name: p.default for p in [*own, *common] if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_options(name: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The kind's options validated against the types of ``setup`` and the common options
    (``ValueError`` naming the option otherwise)."""
    return check_typed_options(f"kernel {name!r}", [get(name).setup, Kernel.__init__], opts)


def build(name: str, *, d_model: int, max_len: int, mode: Mode = "circular", **opts: Any) -> Kernel:
    """Build the kernel registered as ``name``; unknown or mistyped options raise ``ValueError``."""
    return get(name)(d_model, max_len, mode, **check_options(name, opts))


# ---------------------------------------------------------------------------------------------
# applying a kernel


def convolve(
    kernel: Kernel,
    x: Tensor,
    *,
    lengths: Tensor | None = None,
    backend: Backend = "auto",
    skip: Tensor | None = None,
) -> Tensor:
    """``global_conv(x, kernel(n), mode=kernel.mode)`` for x (B, L, D); returns (B, L, D).

    Each sequence is convolved with the kernel of its own true length n (``lengths[b]``, or L):
    one call with ``kernel(L)`` when the kernel does not depend on n (the operator then uses its
    first n taps), else one call per distinct length. ``skip`` (D,) adds ``skip[c] * x[t, c]``
    (0 past each sequence's end) by adding it to the kernel's offset-0 tap: the same function as
    adding it to the output, without two more passes over x and its gradient.
    """
    B, L, D = x.shape

    def taps(n: int) -> Tensor:
        k = kernel(n)
        return k if skip is None else with_identity(k, skip, kernel.mode)

    if lengths is None or not kernel.length_dependent:
        return ops.global_conv(x, taps(L), mode=kernel.mode, lengths=lengths, backend=backend)
    if not isinstance(lengths, Tensor) or lengths.shape != (B,) or lengths.is_floating_point():
        raise ValueError(f"lengths must be an integer tensor of shape ({B},)")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > L:
        raise ValueError(f"lengths must lie in [1, {L}] (the padded length), got [{lo}, {hi}]")
    y = x.new_zeros(B, L, D)
    for n in lengths.unique().tolist():
        rows = (lengths == n).nonzero().squeeze(1)
        y[rows, :n] = ops.global_conv(x[rows, :n], taps(n), mode=kernel.mode, backend=backend)
    return y


def with_identity(k: Tensor, weight: Tensor, mode: str) -> Tensor:
    """k (rows, D) with ``weight`` (D,) added to its offset-0 tap (row 0; the centre in ``full``).

    ``global_conv(x, with_identity(k, w, mode), mode=mode) == global_conv(x, k, mode=mode) + w * x``
    (zero past each sequence's end, like the operator's output).
    """
    centre = (k.shape[0] - 1) // 2 if mode == "full" else 0
    return torch.cat([k[:centre], k[centre : centre + 1] + weight, k[centre + 1 :]])


# ---------------------------------------------------------------------------------------------
# helpers for kinds


def crop(kernel: Tensor, n: int, mode: str) -> Tensor:
    """The first n taps (centre 2n-1 rows in full mode) of a kernel with at least n taps."""
    if mode == "full":
        K = (kernel.shape[0] + 1) // 2
        return kernel[K - n : K - 1 + n]
    return kernel[:n]


def offsets(n: int, mode: str, device: torch.device | None = None) -> Tensor:
    """The offset each row of a length-n kernel stands for: 0..n-1, or -(n-1)..n-1 in full."""
    if mode == "full":
        return torch.arange(-(n - 1), n, device=device)
    return torch.arange(n, device=device)


def lerp_rows(table: Tensor, u: Tensor, *, wrap: bool) -> Tensor:
    """Linear interpolation of the rows of ``table`` (R, ...) at fractional row positions u (m,).

    ``wrap``: the rows are periodic (row R is row 0); otherwise positions are clamped to [0, R-1].
    """
    R = table.shape[0]
    if not wrap:
        u = u.clamp(0, R - 1)
    lo = u.floor()
    w = (u - lo).to(table.dtype).reshape(-1, *([1] * (table.dim() - 1)))
    lo = lo.long()
    hi = (lo + 1) % R if wrap else (lo + 1).clamp(max=R - 1)
    return table[lo % R] * (1 - w) + table[hi] * w


def stretch(kernel: Tensor, n: int, mode: str) -> Tensor:
    """Resample a K-tap kernel (rows(K), D) to n taps over relative position, keeping its sum.

    Tap s of the result stands for the stretch of [s, s+1) onto [s*K/n, (s+1)*K/n) of the K-tap
    kernel. Stretching (n > K) interpolates linearly between tap centres (torch's
    ``interpolate(mode="linear")``; periodic in circular mode); shrinking (n < K) sums the taps
    that fall into each new tap (area interpolation, torch's adaptive average pooling), so nothing
    aliases. The result is scaled by the length ratio, which keeps the sum exactly when one
    length divides the other.
    """
    R, M = kernel.shape[0], 2 * n - 1 if mode == "full" else n
    if M < R:
        return F.adaptive_avg_pool1d(kernel.t()[None], M)[0].t() * (R / M)
    if mode != "circular":
        return F.interpolate(kernel.t()[None], size=M, mode="linear")[0].t() * (R / M)
    u = (torch.arange(n, device=kernel.device, dtype=torch.float64) + 0.5) * (R / n) - 0.5
    return lerp_rows(kernel, u, wrap=True) * (R / n)


__all__ = [
    "Kernel",
    "available",
    "build",
    "convolve",
    "crop",
    "get",
    "lerp_rows",
    "offsets",
    "options",
    "register_kernel",
    "stretch",
]
