"""Effective token-mixing matrices: what each output position reads from each input position.

For a global convolution the matrix is fixed and structured: in circular mode, channel c mixes
with the circulant M[t, j] = W[(j - t) mod L, c] (+ skip[c] on the diagonal), the same for every
input. Attention's matrix softmax(Q K^T / sqrt(d)) is recomputed from every input. Putting the
two side by side on the same input is the seed's question in one picture.
"""

from __future__ import annotations

import torch
from torch import Tensor

from globalconv.mixers import TokenMixer


def influence(mixer: TokenMixer, x: Tensor) -> Tensor:
    """(L, L) matrix I[t, j] = || d y[t] / d x[j] ||_F for one sequence x (L, D).

    Works for any mixer (it is the Jacobian's norm per pair of positions), so every mixer can
    be drawn the same way; for a linear mixer it does not depend on x.
    """
    L, D = x.shape
    mixer = mixer.eval()

    def fn(inp: Tensor) -> Tensor:
        return mixer(inp[None])[0]

    jac = torch.autograd.functional.jacobian(fn, x.detach())  # (L, D, L, D)
    return jac.pow(2).sum(dim=(1, 3)).sqrt()


def circulant(kernel: Tensor, skip: Tensor | None = None) -> Tensor:
    """Per-channel mixing matrices (D, L, L) of the circular global convolution with kernel
    (L, D): M[c, t, j] = kernel[(j - t) mod L, c] (+ skip[c] on the diagonal)."""
    L, D = kernel.shape
    t = torch.arange(L)
    offsets = (t[None, :] - t[:, None]) % L  # (L, L): j - t mod L
    M = kernel.t()[:, offsets]  # (D, L, L)
    if skip is not None:
        M = M + torch.diag_embed(skip[:, None].expand(D, L))
    return M


def attention_weights(mixer: TokenMixer, x: Tensor) -> Tensor:
    """(H, L, L) softmax attention weights of an ``attention`` mixer on one sequence x (L, D)."""
    return mixer.attention_maps(x[None])[0]
