"""The implicit kernel of Hyena (Poli et al. 2023, "Hyena Hierarchy") and CKConv (Romero et al.
2022, "CKConv: Continuous Kernel Convolution For Sequential Data"): a small MLP with sine
activations maps positional features of each offset to the D channels' taps, times a fixed
per-channel exponential decay:

    z(s) = [s/K, sin(2 pi f s/K), cos(2 pi f s/K)]  for f = 1..bands       # (1 + 2 bands,)
    h(s) = Linear(sin(w * Linear(... sin(w * Linear(z(s))) ...)))        # (D,), w learnable
    k[s, c] = h(s)_c * exp(-a_c |s| / K) / norm_c

K = max_len sets only the scale of the positions: the kernel exists at every offset, so it is
length-free by construction (no resampling; ``resample`` has no effect). In circular and causal
mode the offsets are s = 0..n-1, in full mode -(n-1)..n-1. Note that in circular mode tap n-1 is
offset -1, which this kernel reads as a far offset: use full mode for two-sided context.

Decay rates a_c are spread over the channels so that the envelope falls to 1e-2 between
0.3 K (fast channels) and 1.5 K (slow), as in Hyena's exponential modulation; ``decay=False``
drops it. Initialisation: torch's default for the linear layers, sine frequencies w = ``omega``,
and the norm buffer makes each channel's kernel unit norm at max_len at initialisation (Hyena
leaves the scale to the following normalisation; the explicit kernel's N(0, 1/K) has unit norm
in expectation), fixed thereafter.

Parameters: (1+2b) W + W + (depth-1)(W^2 + W) + W D + D + depth W for b bands, W = width,
independent of max_len. The trainer decays the MLP's matrices as any linear layer's unless the
kernel's ``weight_decay`` option says otherwise. Leaves out: Hyena's learnable positional
embedding variant and its bias ("shift") on the decay.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from globalconv.core.errors import ConfigError
from globalconv.kernels.base import Kernel, offsets, register_kernel


class Sine(nn.Module):
    """sin(w * x) with one learnable frequency per unit."""

    def __init__(self, width: int, omega: float) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.full((width,), float(omega)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.freq * x)


@register_kernel("implicit")
class ImplicitKernel(Kernel):
    length_free = True
    resampling = "none needed: evaluated at the new offsets"

    def setup(
        self,
        *,
        bands: int = 8,
        width: int = 32,
        depth: int = 2,
        omega: float = 1.0,
        decay: bool = True,
    ) -> None:
        if bands < 0 or width < 1 or depth < 1:
            raise ConfigError(
                f"implicit kernel: need bands >= 0, width >= 1, depth >= 1; "
                f"got {bands}, {width}, {depth}"
            )
        self.bands, self.width, self.depth = bands, width, depth
        layers: list[nn.Module] = [nn.Linear(1 + 2 * bands, width), Sine(width, omega)]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), Sine(width, omega)]
        layers.append(nn.Linear(width, self.d_model))
        self.mlp = nn.Sequential(*layers)
        # the device explicitly: a torch.device context can miss linspace once another library
        # (transformers' loading) has patched it while torch cached its list of factories
        here = torch.empty(0).device
        fraction = torch.linspace(0.3, 1.5, self.d_model, device=here)  # where each reaches 1e-2
        rates = math.log(1e2) / fraction if decay else torch.zeros(self.d_model)
        self.register_buffer("rates", rates, persistent=False)  # (D,)
        self.register_buffer("norm", torch.ones(self.d_model))  # (D,), fixed at initialisation
        with torch.no_grad():
            self.norm.copy_(self.taps(self.max_len).norm(dim=0))

    def features(self, s: Tensor) -> Tensor:
        """z(s) for offsets s (m,): (m, 1 + 2 bands)."""
        t = (s.to(self.rates.dtype) / self.max_len)[:, None]  # (m, 1)
        f = torch.arange(1, self.bands + 1, device=s.device, dtype=t.dtype)
        angle = 2 * math.pi * t * f  # (m, bands)
        return torch.cat([t, torch.sin(angle), torch.cos(angle)], dim=1)

    def taps(self, n: int) -> Tensor:  # (rows(n), D)
        s = offsets(n, self.mode, self.norm.device)
        z = self.features(s).to(self.mlp[0].weight.dtype)
        envelope = torch.exp(-self.rates[None, :] * s.abs()[:, None] / self.max_len)
        return self.mlp(z) * envelope.to(z.dtype) / self.norm

    def flops(self, n: int) -> int:
        F, W, D = 1 + 2 * self.bands, self.width, self.d_model
        mlp = F * W + (self.depth - 1) * W * W + W * D
        return self.rows(n) * (2 * mlp + 2 * self.depth * W + 3 * D)
