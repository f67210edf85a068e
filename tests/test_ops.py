"""The operator against a float64 reference written straight from the formulas."""

import pytest
import torch

from globalconv.ops import BACKENDS, global_conv, native

# every explicit path: the literal conv1d, and the FFT path through torch.fft and pocketfft
# the compiled kernel's cases skip (visibly) where it cannot be built; tests/test_ops_native.py
# fails instead wherever a C++ compiler exists
NATIVE = pytest.param(
    "native", marks=pytest.mark.skipif(not native.available(), reason="native kernel unavailable")
)
PATHS = [NATIVE if b == "native" else b for b in BACKENDS if b != "auto"]
FFT_PATHS = [b for b in PATHS if b != "direct"]
USABLE = [b for b in BACKENDS if b != "native" or native.available()]  # for loops inside tests
LENGTHS = [1, 2, 3, 7, 16, 61, 64, 257, 1000]
MODES = ["circular", "causal", "full"]


def reference(x, kernel, mode, lengths=None):
    """Loops over the formulas of the issue, in float64."""
    x = x.double()
    kernel = kernel.double()
    B, L, D = x.shape
    y = torch.zeros(B, L, D, dtype=torch.float64)
    for b in range(B):
        n = L if lengths is None else int(lengths[b])
        xb = x[b, :n]  # (n, D)
        for t in range(n):
            if mode == "circular":
                idx = (t + torch.arange(n)) % n
                y[b, t] = (kernel[:n] * xb[idx]).sum(0)
            elif mode == "causal":
                s = torch.arange(min(t + 1, kernel.shape[0]))
                y[b, t] = (kernel[s] * xb[t - s]).sum(0)
            else:
                K = (kernel.shape[0] + 1) // 2
                s = torch.arange(-(K - 1), K)
                ok = (t + s >= 0) & (t + s < n)
                y[b, t] = (kernel[K - 1 + s[ok]] * xb[t + s[ok]]).sum(0)
    return y


def make(L, D=3, B=2, mode="circular", dtype=torch.float64, extra_taps=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=dtype)
    K = L + extra_taps
    rows = 2 * K - 1 if mode == "full" else K
    kernel = torch.randn(rows, D, generator=g, dtype=dtype)
    return x, kernel


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("L", LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backends_match_reference(L, mode, dtype):
    x, kernel = make(L, mode=mode, dtype=dtype, B=2 if L < 500 else 1, D=3 if L < 500 else 2)
    want = reference(x, kernel, mode)
    tol = (
        dict(rtol=1e-4, atol=1e-4 * L**0.5)
        if dtype == torch.float32
        else dict(rtol=1e-9, atol=1e-9)
    )
    for backend in USABLE:
        got = global_conv(x, kernel, mode=mode, backend=backend)
        assert got.dtype == dtype and got.shape == x.shape
        torch.testing.assert_close(got.double(), want, **tol, msg=f"{backend}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ragged_lengths_match_reference(mode, backend, dtype):
    L = 37
    x, kernel = make(L, B=5, mode=mode, dtype=dtype, seed=1)
    lengths = torch.tensor([37, 1, 20, 36, 5])
    want = reference(x, kernel, mode, lengths)
    got = global_conv(x, kernel, mode=mode, lengths=lengths, backend=backend)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got.double(), want, **tol)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", PATHS)
def test_padding_and_batch_mates_do_not_leak(mode, backend):
    L = 24
    x, kernel = make(L, B=3, mode=mode, seed=2)
    lengths = torch.tensor([10, 24, 3])
    y = global_conv(x, kernel, mode=mode, lengths=lengths, backend=backend)
    garbage = x.clone()
    for b, n in enumerate(lengths.tolist()):
        garbage[b, n:] = 1e3 * torch.randn(L - n, x.shape[2], dtype=x.dtype)
    garbage[1] = torch.randn(L, x.shape[2], dtype=x.dtype)  # a different batch mate
    y2 = global_conv(garbage, kernel, mode=mode, lengths=lengths, backend=backend)
    for b in (0, 2):
        torch.testing.assert_close(y[b], y2[b], rtol=1e-9, atol=1e-9)
        assert (y2[b, int(lengths[b]) :] == 0).all()
    # alone in its own batch, cut to its own length, a sequence gives the same output
    alone = global_conv(
        x[:1, :10], kernel if mode == "causal" else kernel, mode=mode, backend=backend
    )
    torch.testing.assert_close(y[0, :10], alone[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", PATHS)
def test_causal_mode_never_sees_the_future(backend):
    L, D = 12, 2
    x, kernel = make(L, D=D, B=1, mode="causal", seed=3)
    x.requires_grad_(True)
    y = global_conv(x, kernel, mode="causal", backend=backend)
    for t in range(L):
        (grad,) = torch.autograd.grad(y[0, t].sum(), x, retain_graph=True)
        # exactly 0 for direct; FFT round-off (~1e-16) is not a dependence
        assert (grad[0, t + 1 :].abs() < 1e-12).all(), f"output {t} depends on the future"
        assert (grad[0, : t + 1].abs().sum(-1) > 1e-6).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", PATHS)
@pytest.mark.parametrize("ragged", [False, True])
def test_gradcheck(mode, backend, ragged):
    L = 6
    x, kernel = make(L, B=2, D=2, mode=mode, seed=4)
    x.requires_grad_(True)
    kernel.requires_grad_(True)
    lengths = torch.tensor([6, 4]) if ragged else None
    fn = lambda a, k: global_conv(a, k, mode=mode, lengths=lengths, backend=backend)
    assert torch.autograd.gradcheck(fn, (x, kernel))


def test_longer_kernel_uses_first_taps():
    L = 9
    x, kernel = make(L, mode="circular", extra_taps=5, seed=5)
    torch.testing.assert_close(
        global_conv(x, kernel, mode="circular"), global_conv(x, kernel[:L], mode="circular")
    )
    x, kernel = make(L, mode="full", extra_taps=5, seed=5)
    K = (kernel.shape[0] + 1) // 2
    inner = kernel[K - L : K - 1 + L]
    for backend in [b for b in USABLE if b != "auto"]:
        torch.testing.assert_close(
            global_conv(x, kernel, mode="full", backend=backend), reference(x, inner, "full")
        )


def test_short_causal_kernel_is_a_finite_filter():
    x, _ = make(20, mode="causal", seed=6)
    kernel = torch.randn(4, x.shape[2], dtype=x.dtype)
    want = reference(x, kernel, "causal")
    for backend in [b for b in USABLE if b != "auto"]:
        torch.testing.assert_close(global_conv(x, kernel, mode="causal", backend=backend), want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", FFT_PATHS)
def test_low_precision_computes_in_float32(dtype, mode, backend):
    x, kernel = make(50, mode=mode, dtype=torch.float32, seed=7)
    got = global_conv(x.to(dtype), kernel.to(dtype), mode=mode, backend=backend)
    assert got.dtype == dtype
    want = reference(x.to(dtype), kernel.to(dtype), mode)
    torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize(
    "x_shape, k_shape, kwargs, message",
    [
        ((4, 8), (8, 8), {}, r"x must have shape \(B, L, D\)"),
        ((2, 8, 3), (8,), {}, r"kernel must have shape \(K, D\)"),
        ((2, 8, 3), (8, 4), {}, r"kernel has 4 channels but x has D=3"),
        ((2, 8, 3), (7, 3), {}, r"at least n=8 taps"),
        ((2, 8, 3), (8, 3), {"mode": "full"}, r"2K-1 \(odd\) rows"),
        ((2, 8, 3), (13, 3), {"mode": "full"}, r"K >= n=8"),
        ((2, 8, 3), (8, 3), {"mode": "wrap"}, r"unknown mode 'wrap'"),
        ((2, 8, 3), (8, 3), {"backend": "cuda"}, r"unknown backend 'cuda'"),
        ((2, 8, 3), (8, 3), {"backend": "fft "}, r"expected one of auto, direct, fft, native,"),
        ((2, 8, 3), (8, 3), {"lengths": torch.tensor([8])}, r"lengths must have shape \(2,\)"),
        ((2, 8, 3), (8, 3), {"lengths": torch.tensor([8, 9])}, r"lengths must lie in \[1, 8\]"),
        ((2, 8, 3), (8, 3), {"lengths": torch.tensor([0, 8])}, r"lengths must lie in \[1, 8\]"),
        ((2, 8, 3), (8, 3), {"lengths": torch.tensor([8.0, 8.0])}, r"integer tensor"),
    ],
)
def test_bad_input_is_a_clear_error(x_shape, k_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        global_conv(torch.randn(x_shape), torch.randn(k_shape), **kwargs)


def test_integer_input_is_rejected():
    with pytest.raises(ValueError, match="floating point"):
        global_conv(torch.ones(1, 4, 2, dtype=torch.long), torch.randn(4, 2))


@pytest.mark.parametrize("backend", [NATIVE if b == "native" else b for b in BACKENDS])
def test_circular_shorter_lengths_need_only_their_taps(backend):
    x, kernel = make(8, mode="circular", seed=8)
    lengths = torch.tensor([5, 3])
    got = global_conv(x, kernel[:5], mode="circular", lengths=lengths, backend=backend)
    torch.testing.assert_close(got, reference(x, kernel[:5], "circular", lengths))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", PATHS)
def test_autocast_does_not_change_the_computation(mode, backend):
    x, kernel = make(16, mode=mode, dtype=torch.float32, seed=9)
    want = global_conv(x, kernel, mode=mode, backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = global_conv(x, kernel, mode=mode, backend=backend)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)
