"""The FFT path through pocketfft (``scipy.fft``), CPU only: transforms along the length axis of
the user's (B, L, D) layout itself, so no (B, L, D) <-> (B, D, N) layout change is made.

The same function as ``globalconv.ops.fft.spectral_conv`` (see its formulas), with the spectra
laid out (b, F, D) instead of (b, D, F): pocketfft transforms a strided axis by gathering a few
signals at a time into a small buffer and vectorising across them, which is the transpose done
inside the transform, in cache. Everything else follows fft.py: x and grad_y transformed once
each and the kernel once per call, conj(X) and the kernel spectrum kept for the backward, the
kernel gradient's batch sum taken in the frequency domain, the batch in the same cache-sized
chunks. Arrays are shared with torch through ``.numpy()`` and ``torch.from_numpy`` (no copies);
pocketfft runs ``torch.get_num_threads()`` workers.

Only first derivatives: the backward is not itself differentiable.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from globalconv.ops import fft


def spectral_conv(
    x: Tensor, kernel: Tensor, n_fft: int, *, correlate: bool, out_len: int
) -> Tensor:
    """y[b, t, c] = sum_s k[s, c] * x[b, (t -/+ s) mod n_fft, c] for t < out_len; (B, out_len, D).

    x (B, L, D) and kernel (T, D) or (B, T, D) are real CPU tensors, L and T at most ``n_fft``.
    ``correlate`` picks t+s (correlation) over t-s (convolution).
    """
    if x.device.type != "cpu":
        raise ValueError(
            f"backend 'pocketfft' runs on CPU only, got x on {x.device}; use backend='fft'"
        )
    keep = torch.is_grad_enabled() and kernel.requires_grad  # the kernel gradient needs X
    return _PocketSpectralConv.apply(x, kernel, n_fft, correlate, out_len, keep)


def _array(t: Tensor) -> np.ndarray:
    """A numpy view of a real CPU tensor (no copy unless torch holds it lazily negated)."""
    return t.detach().resolve_neg().numpy()


def _rfft(a: np.ndarray, n_fft: int) -> np.ndarray:
    """rfft over axis -2 of a (..., L, D), zero padded to n_fft: (..., n_fft // 2 + 1, D)."""
    return scipy.fft.rfft(a, n=n_fft, axis=-2, workers=torch.get_num_threads())


def _store(out: np.ndarray, spectrum: np.ndarray, n_fft: int) -> None:
    """out (b, n, d) <- irfft(spectrum (b, F, d))[:, :n]; the spectrum is overwritten."""
    signal = scipy.fft.irfft(
        spectrum, n=n_fft, axis=-2, overwrite_x=True, workers=torch.get_num_threads()
    )
    out[...] = signal[:, : out.shape[1]]


class _PocketSpectralConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, n_fft: int, correlate: bool, out_len: int, keep):
        B, L, D = x.shape
        batched = kernel.dim() == 3
        K = _rfft(_array(kernel if batched else kernel.unsqueeze(0)), n_fft)  # (B or 1, F, D)
        M = np.conj(K) if correlate else K
        xa = _array(x)
        y = np.empty((B, out_len, D), dtype=xa.dtype)
        spectra = []  # conj(X) per chunk, as tensors sharing the arrays' memory
        ctx.chunks = fft._chunks(x, n_fft)  # the same chunks as the torch.fft path
        for rows, cols in ctx.chunks:
            X = _rfft(xa[rows, :, cols], n_fft)  # (b, F, d)
            m = M[rows, :, cols] if batched else M[:, :, cols]
            if keep:
                _store(y[rows, :, cols], X * m, n_fft)
                spectra.append(torch.from_numpy(np.conjugate(X, out=X)))
            else:
                _store(y[rows, :, cols], np.multiply(X, m, out=X), n_fft)
        ctx.save_for_backward(torch.from_numpy(K), *spectra)
        ctx.shape = (L, kernel.shape[-2], n_fft, correlate, batched)
        return torch.from_numpy(y)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor):
        K, *spectra = (t.numpy() for t in ctx.saved_tensors)
        L, taps, n_fft, correlate, batched = ctx.shape
        need_x, need_k = ctx.needs_input_grad[:2]
        g = _array(grad_y)
        B, _, D = g.shape
        adjoint = K if correlate else np.conj(K)  # conj(M)
        grad_x = np.empty((B, L, D), dtype=g.dtype) if need_x else None
        # sum_b conj(X_b) G_b, or one product per sequence when each has its own kernel
        if need_k:
            A = np.zeros_like(K) if not batched else np.empty((B, *K.shape[1:]), K.dtype)
        for i, (rows, cols) in enumerate(ctx.chunks):
            G = _rfft(g[rows, :, cols], n_fft)  # (b, F, d)
            if need_k and batched:
                np.multiply(spectra[i], G, out=A[rows, :, cols])
            elif need_k:
                A[0, :, cols] += (spectra[i] * G).sum(0)
            if need_x:
                a = adjoint[rows, :, cols] if batched else adjoint[:, :, cols]
                _store(grad_x[rows, :, cols], np.multiply(G, a, out=G), n_fft)
        grad_k = None
        if need_k:
            if correlate:  # sum_b X_b conj(G_b) = conj(sum_b conj(X_b) G_b)
                np.conjugate(A, out=A)
            grad_k = np.empty((A.shape[0], taps, D), dtype=g.dtype)
            _store(grad_k, A, n_fft)
            grad_k = torch.from_numpy(grad_k if batched else grad_k[0])
        return None if grad_x is None else torch.from_numpy(grad_x), grad_k, None, None, None, None
