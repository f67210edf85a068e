"""The FFT path of the global convolution: one custom autograd function behind every mode.

For x (B, L, D) and kernel taps k (T, D) -- or (B, T, D), one kernel per sequence -- both
zero padded to the transform size N, with X = rfft(x), K = rfft(k) over the length axis:

    y      = irfft(X * M)[:out_len]          M = K        (convolution,  y[t] = sum_s k[s] x[t-s])
                                             M = conj(K)  (correlation,  y[t] = sum_s k[s] x[t+s])
    grad_x = irfft(G * conj(M))[:L]          G = rfft(grad_y), grad_y zero padded to N
    grad_k = irfft(sum_b conj(X_b) G_b)[:T]  (convolution; its conjugate for correlation)

indices taken mod N. What a composition of ``torch.fft`` calls under autograd does twice or in a
slow layout, this does once and in the layout FFTs like:

* x and grad_y are transformed once each, the kernel once per call; the forward keeps conj(X)
  (about the input's size; conjugated once, for the kernel gradient) and the kernel spectrum,
  and nothing else;
* the channel signals are (b, D, N), contiguous along the transform: the user's (B, L, D) is
  transposed on the way in and back on the way out (long rows through 16 x 16 tiles on CPU),
  and on CPU the batch is cut into chunks of about ``CHUNK_ELEMENTS`` samples (a longer
  sequence into channel blocks of about ``BLOCK_ELEMENTS``), so a chunk's signal, spectrum and
  product stay in cache and its buffers are reused rather than freshly paged in;
* the batch sum of the kernel gradient is taken in the frequency domain, so the kernel costs
  one inverse transform, not B.

Only first derivatives: the backward is not itself differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Elements of one chunk on CPU: 2^18 float32 = 1 MiB, so a chunk's signal, spectrum and product
# fit in a few MiB of cache (measured with `globalconv bench op`; CUDA runs the whole batch).
CHUNK_ELEMENTS = 1 << 18
# A sequence past CHUNK_ELEMENTS goes in channel blocks of about BLOCK_ELEMENTS: measured against
# whole sequences (B=4, D=256), 1.2x faster causal at L=8192, 1.47x at 16384, no slower elsewhere.
BLOCK_ELEMENTS = 1 << 20
TILE = 16  # elements per side of the blocks a CPU layout change goes through
# Tiles pay off once a plain copy would read the source this many elements apart; closer, the
# plain copy is as fast or faster (1.5-2.5x at small sizes, where the tiles' extra calls show).
TILED_FROM = 256


def spectral_conv(
    x: Tensor, kernel: Tensor, n_fft: int, *, correlate: bool, out_len: int
) -> Tensor:
    """y[b, t, c] = sum_s k[s, c] * x[b, (t -/+ s) mod n_fft, c] for t < out_len; (B, out_len, D).

    x (B, L, D) and kernel (T, D) or (B, T, D) are real, L and T at most ``n_fft``, zero padded
    to it. ``correlate`` picks t+s (correlation) over t-s (convolution).
    """
    keep = torch.is_grad_enabled() and kernel.requires_grad  # the kernel gradient needs X
    return _SpectralConv.apply(x, kernel, n_fft, correlate, out_len, keep)


def first_derivatives_only(backend: str) -> None:
    """Called first in a backward: grad enabled there means create_graph=True, i.e. a derivative
    of this backward is asked, which the FFT backends do not provide."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"global_conv's {backend} backend has first derivatives only; for second "
            "derivatives (create_graph=True) use backend='direct'"
        )


def _chunks(x: Tensor, n_fft: int) -> list[tuple[slice, slice]]:
    """(sequences, channels) slices of x (B, L, D): on CPU whole sequences, about CHUNK_ELEMENTS
    channel samples at a time, or channel blocks of one sequence when it is larger; all of x
    on CUDA."""
    B, _, D = x.shape
    every = slice(0, D)
    if x.device.type != "cpu":
        return [(slice(0, B), every)]
    if D * n_fft <= CHUNK_ELEMENTS:
        rows = CHUNK_ELEMENTS // (D * n_fft)
        return [(slice(b, min(b + rows, B)), every) for b in range(0, B, rows)]
    width = max(TILE, BLOCK_ELEMENTS // n_fft // TILE * TILE)
    return [(slice(b, b + 1), slice(c, c + width)) for b in range(B) for c in range(0, D, width)]


def _spectrum(x: Tensor, n_fft: int) -> Tensor:
    """rfft over the length axis of x (b, L, D), zero padded to n_fft: (b, D, n_fft // 2 + 1)."""
    b, L, D = x.shape
    signal = x.new_empty(b, D, n_fft)  # (b, D, N): the transform axis contiguous
    _copy_transposed(signal[..., :L], x)
    if n_fft > L:
        signal[..., L:].zero_()
    return torch.fft.rfft(signal, dim=-1)


def _store(out: Tensor, spectrum: Tensor, n_fft: int) -> None:
    """out (b, n, D) <- irfft(spectrum (b, D, F))[..., :n], transposed back to the user's layout."""
    _copy_transposed(out, torch.fft.irfft(spectrum, n=n_fft, dim=-1)[..., : out.shape[1]])


def _copy_transposed(out: Tensor, src: Tensor) -> None:
    """out[b, p, q] = src[b, q, p], through TILE x TILE blocks when both sizes allow.

    A plain strided copy reads (or writes) one side a whole row apart per element; going
    through a buffer of tiles makes both copies walk memory in runs of TILE elements, which
    measured about a quarter faster end to end on a busy CPU. On CPU a sequence larger than
    CHUNK_ELEMENTS goes block by block, so a block's reads, tiles and writes stay in cache: twice
    as fast at D=256, L=16384, the same at L <= 4096 (``globalconv bench op --parts breakdown``).
    """
    b, P, Q = out.shape
    if out.device.type == "cpu" and P * Q > CHUNK_ELEMENTS:  # one sequence is past the cache
        step = max(TILE, CHUNK_ELEMENTS // min(P, Q) // TILE * TILE)
        for i in range(b):
            for start in range(0, max(P, Q), step):
                block = slice(start, start + step)
                if P >= Q:
                    _copy_tiles(out[i : i + 1, block], src[i : i + 1, :, block])
                else:
                    _copy_tiles(out[i : i + 1, :, block], src[i : i + 1, block])
        return
    _copy_tiles(out, src)


def _copy_tiles(out: Tensor, src: Tensor) -> None:
    """out[b, p, q] = src[b, q, p] in one go (see ``_copy_transposed``)."""
    b, P, Q = out.shape
    t = TILE
    if P % t or Q % t or out.device.type != "cpu" or src.stride(1) < TILED_FROM:
        out.copy_(src.transpose(1, 2))
        return
    tiles = src.new_empty(b, P // t, Q // t, t, t)  # [b, pj, qj, qi, pi]
    tiles.copy_(src.view(b, Q // t, t, P // t, t).permute(0, 3, 1, 2, 4))
    out.view(b, P // t, t, Q // t, t).copy_(tiles.permute(0, 1, 4, 2, 3))


class _SpectralConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, n_fft: int, correlate: bool, out_len: int, keep):
        B, L, D = x.shape
        batched = kernel.dim() == 3
        K = _spectrum(kernel if batched else kernel.unsqueeze(0), n_fft)  # (B or 1, D, F)
        M = K.conj_physical() if correlate else K
        y = x.new_empty(B, out_len, D)
        spectra = []  # conj(X) per chunk: the kernel gradient's factor, conjugated once here
        ctx.chunks = _chunks(x, n_fft)  # the backward pairs its chunks with these spectra
        for rows, cols in ctx.chunks:
            X = _spectrum(x[rows, :, cols], n_fft)  # (b, d, F)
            m = M[rows, cols] if batched else M[:, cols]
            if keep:
                _store(y[rows, :, cols], X * m, n_fft)
                spectra.append(X.conj_physical_())
            else:
                _store(y[rows, :, cols], X.mul_(m), n_fft)
        ctx.save_for_backward(K, *spectra)
        ctx.shape = (L, kernel.shape[-2], n_fft, correlate, batched)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        first_derivatives_only("fft")
        K, *spectra = ctx.saved_tensors
        L, taps, n_fft, correlate, batched = ctx.shape
        need_x, need_k = ctx.needs_input_grad[:2]
        B, _, D = grad_y.shape
        adjoint = K if correlate else K.conj_physical()  # conj(M)
        grad_x = grad_y.new_empty(B, L, D) if need_x else None
        # sum_b conj(X_b) G_b, or one product per sequence when each has its own kernel
        if need_k:
            A = torch.zeros_like(K) if not batched else K.new_empty(B, *K.shape[1:])
        for i, (rows, cols) in enumerate(ctx.chunks):
            G = _spectrum(grad_y[rows, :, cols], n_fft)  # (b, d, F)
            if need_k and batched:
                torch.mul(spectra[i], G, out=A[rows, cols])
            elif need_k and G.shape[0] == 1:
                A[0, cols].addcmul_(spectra[i][0], G[0])
            elif need_k:
                A[0, cols] += (spectra[i] * G).sum(0)
            if need_x:
                a = adjoint[rows, cols] if batched else adjoint[:, cols]
                _store(grad_x[rows, :, cols], G.mul_(a), n_fft)
        grad_k = None
        if need_k:
            if correlate:  # sum_b X_b conj(G_b) = conj(sum_b conj(X_b) G_b)
                A.conj_physical_()
            grad_k = grad_y.new_empty(A.shape[0], taps, D)
            _store(grad_k, A, n_fft)
            grad_k = grad_k if batched else grad_k[0]
        return grad_x, grad_k, None, None, None, None
