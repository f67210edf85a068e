"""FLOPs: the analytic counts of the mixers next to counts measured by running them.

Convention (everywhere in globalconv): a multiply-add is 2 FLOPs; a real FFT of size n, or its
inverse, is 2.5 n log2 n; a complex FFT of size n is 5 n log2 n.

``torch.utils.flop_counter.FlopCounterMode`` counts matrix products, convolutions and attention
but knows no FFT, no element-wise op and not the CPU's fused attention kernel. ``measure_flops``
registers the FFT ops with the convention above and the CPU attention kernel as torch counts
attention elsewhere; element-wise work (a complex product, a softmax, a residual add) stays
uncounted there while the analytic counts include it, which is why the two agree only within a
stated tolerance (see ``tests/analysis/test_flops.py``).

The seed's complexity claim, made exact for one sequence of length L and width D:

    direct global convolution   2 L^2 D                       (L taps for each of L outputs)
    FFT global convolution      D (3 * 2.5 N log2 N + 6 (N/2 + 1)),  N = L (circular)
    self-attention (mixing)     4 L^2 D + 5 H L^2              (scores and weighted sum)
    self-attention (total)      8 L D^2 + 4 L^2 D + 5 H L^2    (with Q, K, V, O projections)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from globalconv import ops

aten = torch.ops.aten


def _prod(shape) -> int:
    return math.prod(int(s) for s in shape)


def _transform_flops(shape, dims, per_point: float) -> float:
    """FLOPs of transforms of the given dims over a tensor of ``shape`` (complex sizes)."""
    total = 0.0
    for d in dims:
        n = int(shape[d])
        if n > 1:
            total += per_point * n * math.log2(n) * (_prod(shape) // n)
    return total


def _r2c(inp, dim, normalization, onesided, out_shape=None, **_: Any) -> int:
    return int(_transform_flops(inp, dim, 2.5))  # real input of size n per transform


def _c2r(inp, dim, normalization, last_dim_size, out_shape=None, **_: Any) -> int:
    return int(_transform_flops(out_shape, dim, 2.5))  # real output of size n per transform


def _c2c(inp, dim, normalization, forward, out_shape=None, **_: Any) -> int:
    return int(_transform_flops(inp, dim, 5.0))


def _cpu_attention(query, key, value, *args, out_shape=None, **_: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(grad_out, query, key, value, *args, out_shape=None, **_: Any) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# The FFTs, and the CPU's fused attention kernel, which torch's counter does not know.
EXTRA_FLOP_FORMULAS = {
    aten._fft_r2c: _r2c,
    aten._fft_c2r: _c2r,
    aten._fft_c2c: _c2c,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def measure_flops(fn: Callable[[], Any]) -> int:
    """FLOPs counted while running ``fn()`` (forward, and backward if fn calls it). The counter
    sees torch's operators only, so the operator's compiled kernel is suspended meanwhile
    (``auto`` takes torch.fft, the same transforms)."""
    with (
        ops.native.suspended(),
        FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter,
    ):
        fn()
    return int(counter.get_total_flops())


def measure_forward_flops(module: torch.nn.Module, *inputs: Any) -> int:
    # not under no_grad: torch's module tracker then fails on a submodule that returns a
    # parameter as it is (an explicit kernel at full length does)
    return measure_flops(lambda: module(*inputs))


def operator_costs(L: int, D: int, heads: int = 4) -> dict[str, float]:
    """Analytic forward FLOPs of one sequence for the operator's paths and for attention."""
    return {
        "direct_conv": ops.flops("circular", L, D, "direct"),
        "fft_conv": ops.flops("circular", L, D, "fft"),
        "attention_mixing": 4 * L * L * D + 5 * heads * L * L,
        "attention_total": 8 * L * D * D + 4 * L * L * D + 5 * heads * L * L,
    }


def crossover_length(cheaper_later: str, costlier_later: str, D: int, heads: int = 4) -> int | None:
    """Smallest L (powers of two up to 2^20, then refined) from which ``cheaper_later`` costs
    less than ``costlier_later``; None if it never does in that range."""

    def better(L: int) -> bool:
        c = operator_costs(L, D, heads)
        return c[cheaper_later] < c[costlier_later]

    hi = next((2**k for k in range(1, 21) if better(2**k)), None)
    if hi is None:
        return None
    lo = max(hi // 2, 1)
    if better(lo):
        return lo
    while hi - lo > 1:  # cost curves cross once in this range: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if better(mid) else (mid, hi)
    return hi
