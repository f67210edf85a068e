"""The FFT path's custom autograd function, the auto rule and the optional FlashFFTConv glue.

tests/test_ops.py checks every path against the formulas; these check what the fast path adds:
its gradients against the direct path and a plain torch.fft composition, the chunked batch
loop, what it keeps for backward, and which path ``auto`` takes.
"""

import sys
import tracemalloc
import types

import pytest
import torch

from globalconv.analysis.bench import peak_bytes
from globalconv.ops import conv, fft, flash, global_conv, native, resolve_backend

MODES = ["circular", "causal", "full"]
# the compiled kernel's cases skip (visibly) where it cannot be built; tests/test_ops_native.py
# fails instead wherever a C++ compiler exists
NATIVE = pytest.param(
    "native", marks=pytest.mark.skipif(not native.available(), reason="native kernel unavailable")
)
FFT_PATHS = ["fft", NATIVE, "pocketfft"]  # one autograd scheme: torch.fft, our kernel, scipy.fft


def make(B, L, D, mode, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, D, generator=g, dtype=dtype, requires_grad=True)
    rows = 2 * L - 1 if mode == "full" else L
    kernel = torch.randn(rows, D, generator=g, dtype=dtype, requires_grad=True)
    grad = torch.randn(B, L, D, generator=g, dtype=dtype)
    return x, kernel, grad


def value_and_grads(x, kernel, grad, **kwargs):
    x.grad = kernel.grad = None
    y = global_conv(x, kernel, **kwargs)
    y.backward(grad)
    return y.detach(), x.grad.clone(), kernel.grad.clone()


def two_rows(x, n):
    return [(slice(b, b + 2), slice(None)) for b in range(0, x.shape[0], 2)]


def channel_pairs(x, n):
    B, _, D = x.shape
    return [(slice(b, b + 1), slice(c, c + 2)) for b in range(B) for c in range(0, D, 2)]


@pytest.fixture(
    params=[None, "blocks", two_rows, channel_pairs],
    ids=["one_chunk", "channel_blocks", "two_rows", "channel_pairs"],
)
def chunking(request, monkeypatch):
    """The batch in one chunk; one sequence per chunk in channel blocks of TILE (both limits
    below one sequence: D=40 gives blocks of 16, 16 and 8); two sequences per chunk (last one
    short); or two channels per chunk."""
    if callable(request.param):
        monkeypatch.setattr(fft, "_chunks", request.param)
    elif request.param == "blocks":
        monkeypatch.setattr(fft, "CHUNK_ELEMENTS", 1)
        monkeypatch.setattr(fft, "BLOCK_ELEMENTS", 1)
    else:
        monkeypatch.setattr(fft, "CHUNK_ELEMENTS", 1 << 20)


@pytest.mark.parametrize("backend", FFT_PATHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ragged", [False, True])
def test_fft_gradients_match_the_direct_path(mode, ragged, chunking, backend):
    x, kernel, grad = make(5, 23, 40, mode, seed=1)
    lengths = torch.tensor([23, 1, 9, 22, 16]) if ragged else None
    fast = value_and_grads(x, kernel, grad, mode=mode, lengths=lengths, backend=backend)
    slow = value_and_grads(x, kernel, grad, mode=mode, lengths=lengths, backend="direct")
    for a, b, what in zip(fast, slow, ["y", "grad_x", "grad_kernel"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=what)


@pytest.mark.parametrize("B, D, n_fft", [(5, 3, 8), (3, 40, 64), (2, 100, 200), (1, 16, 4096)])
def test_chunks_cover_every_sequence_and_channel_once(B, D, n_fft, monkeypatch):
    monkeypatch.setattr(fft, "CHUNK_ELEMENTS", 256)
    monkeypatch.setattr(fft, "BLOCK_ELEMENTS", 1024)
    seen = torch.zeros(B, D, dtype=torch.int64)
    chunks = fft._chunks(torch.empty(B, 1, D), n_fft)
    for rows, cols in chunks:
        seen[rows, cols] += 1
    assert (seen == 1).all()
    if D * n_fft > 256:  # one sequence per chunk, in channel blocks of whole tiles
        assert all(rows.stop - rows.start == 1 for rows, _ in chunks)
        inner = [cols.stop - cols.start for _, cols in chunks if cols.stop < D]
        assert all(w % fft.TILE == 0 for w in inner) and len(chunks) == B * -(-D // fft.TILE)


@pytest.mark.parametrize(
    "shape", [(2, 48, 80), (3, 80, 48), (2, 40, 70), (1, 16, 16), (2, 256, 48), (1, 272, 32)]
)
@pytest.mark.parametrize("chunk", [2048, 1 << 20])
def test_layout_copies_in_blocks_and_tiles_are_exact_transposes(shape, chunk, monkeypatch):
    """Blocked (a sequence past CHUNK_ELEMENTS), tiled (sizes divisible by TILE, source rows at
    least TILED_FROM apart) or plain, into a padded view as the operator does: the copy is
    out[b, p, q] = src[b, q, p], nothing else."""
    monkeypatch.setattr(fft, "CHUNK_ELEMENTS", chunk)
    b, P, Q = shape
    src = torch.randn(b, Q, P)
    padded = torch.full((b, P, Q + 5), -1.0)
    fft._copy_transposed(padded[..., :Q], src)
    torch.testing.assert_close(padded[..., :Q], src.transpose(1, 2), rtol=0, atol=0)
    assert (padded[..., Q:] == -1).all()


@pytest.mark.parametrize("backend", FFT_PATHS)
def test_ragged_circular_needs_only_as_many_taps_as_the_longest_sequence(backend):
    x, kernel, grad = make(3, 12, 2, "circular", seed=7)
    kernel = kernel.detach()[:7].requires_grad_()
    lengths = torch.tensor([7, 2, 5])
    fast = value_and_grads(x, kernel, grad, mode="circular", lengths=lengths, backend=backend)
    slow = value_and_grads(x, kernel, grad, mode="circular", lengths=lengths, backend="direct")
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", FFT_PATHS)
def test_circular_gradients_match_a_plain_torch_fft_composition(backend):
    x, kernel, grad = make(3, 64, 4, "circular", seed=2)
    fast = value_and_grads(x, kernel, grad, mode="circular", backend=backend)
    x.grad = kernel.grad = None
    X, K = torch.fft.rfft(x, dim=1), torch.fft.rfft(kernel, dim=0)
    y = torch.fft.irfft(X * K.conj(), n=64, dim=1)
    y.backward(grad)
    for a, b in zip(fast, (y.detach(), x.grad, kernel.grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", FFT_PATHS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_gradients_are_computed_in_float32(mode, dtype, backend):
    x, kernel, grad = make(2, 40, 3, mode, seed=3)
    want = value_and_grads(x, kernel, grad, mode=mode, backend="direct")
    xl = x.detach().to(dtype).requires_grad_()
    kl = kernel.detach().to(dtype).requires_grad_()
    got = value_and_grads(xl, kl, grad.to(dtype), mode=mode, backend=backend)
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == torch.float32 else dict(rtol=3e-2, atol=0.3)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a.double(), b, **tol)


@pytest.mark.parametrize("backend", FFT_PATHS)
@pytest.mark.parametrize("mode", MODES)
def test_one_sided_gradients_and_no_grad(mode, backend):
    x, kernel, grad = make(2, 17, 3, mode, seed=4)
    _, want_x, want_k = value_and_grads(x, kernel, grad, mode=mode, backend="direct")
    (only_x,) = torch.autograd.grad(
        global_conv(x, kernel.detach(), mode=mode, backend=backend), x, grad
    )
    (only_k,) = torch.autograd.grad(
        global_conv(x.detach(), kernel, mode=mode, backend=backend), kernel, grad
    )
    torch.testing.assert_close(only_x, want_x)
    torch.testing.assert_close(only_k, want_k)
    with torch.no_grad():
        y = global_conv(x, kernel, mode=mode, backend=backend)
    torch.testing.assert_close(y, global_conv(x, kernel, mode=mode, backend="direct"))


@pytest.mark.parametrize("backend", FFT_PATHS)
def test_backward_twice_with_retain_graph_gives_the_same_gradients(backend):
    x, kernel, grad = make(2, 30, 3, "circular", seed=5)
    y = global_conv(x, kernel, mode="circular", backend=backend)
    first = torch.autograd.grad(y, (x, kernel), grad, retain_graph=True)
    second = torch.autograd.grad(y, (x, kernel), grad)
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("backend", FFT_PATHS)
@pytest.mark.parametrize("mode, spectra", [("circular", 1), ("causal", 2), ("full", 2)])
def test_backward_keeps_the_input_spectrum_and_the_kernel_spectrum_only(mode, spectra, backend):
    B, L, D = 4, 128, 8  # a power of two: native's circular mode transforms L itself
    x, kernel, _ = make(B, L, D, mode, dtype=torch.float32)
    saved = []
    pack = lambda t: saved.append(t.untyped_storage().nbytes()) or t  # noqa: E731
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        global_conv(x, kernel, mode=mode, backend=backend)
    input_bytes = B * L * D * 4
    # the input's spectrum (about `spectra` x the input: N ~ 2L when padded) and the kernel's
    bound = spectra * input_bytes * (1 + 4 / L) * (1 + 1 / B)
    assert sum(saved) <= bound, f"saved {sum(saved) / input_bytes:.2f}x the input"


@pytest.mark.parametrize("backend", FFT_PATHS)
@pytest.mark.parametrize("mode, bound", [("circular", 7), ("causal", 11), ("full", 11)])
@pytest.mark.parametrize("L", [128, 512])
def test_peak_memory_is_a_constant_times_the_input(mode, bound, L, backend):
    """Output, both gradients, the saved spectra and the temporaries of one chunk: a constant
    times the input whatever L (the spectra of padded modes are twice as long). pocketfft's
    arrays are numpy's, seen by tracemalloc; the sum of both peaks bounds the joint one."""
    B, D = 4, 16
    x, kernel, grad = make(B, L, D, mode, dtype=torch.float32)

    def step():
        x.grad = kernel.grad = None
        global_conv(x, kernel, mode=mode, backend=backend).backward(grad)

    if backend in ("fft", "native"):  # native's strip buffers are not tensors: not counted
        peak = peak_bytes(step)
    else:
        step()  # first calls import and cache; only the operator's own arrays should count
        tracemalloc.start()
        try:
            # tracemalloc also sees Python's own small objects: 64 KiB for them; scipy pads
            # the signal with a copy and inverts at the full transform length, 1 input more
            peak = peak_bytes(step) + tracemalloc.get_traced_memory()[1] - (1 << 16)
        finally:
            tracemalloc.stop()
        bound += 1
    assert peak <= bound * B * L * D * 4, f"peak {peak / (B * L * D * 4):.2f}x the input"


def test_live_tensor_bytes_tracks_allocations_and_frees():
    def work():
        a = torch.ones(1000)  # 4000 bytes
        b = a * 2  # +4000
        del a
        c = b + 1  # a is gone by now: 8000 live
        return c

    assert peak_bytes(work) == 8000


@pytest.mark.parametrize("direct_max_len", [0, 5])
def test_auto_dispatches_by_the_crossover_length(monkeypatch, direct_max_len):
    monkeypatch.setattr(conv, "AUTO_DIRECT_MAX_LEN", direct_max_len)
    monkeypatch.setattr(conv, "native_fits", lambda *args: False)  # see test_ops_native.py
    for L in (1, 5, 6, 40):
        want = "direct" if L <= direct_max_len else "fft"
        assert resolve_backend("auto", L) == want
        x, kernel, _ = make(2, L, 3, "circular")
        name = type(global_conv(x, kernel).grad_fn).__name__
        assert (name == "_SpectralConvBackward") == (want == "fft"), (L, name)
    assert resolve_backend("direct", 10**5) == "direct" and resolve_backend("fft", 2) == "fft"
    assert resolve_backend("pocketfft", 2) == "pocketfft"


@pytest.mark.parametrize("mode", MODES)
def test_auto_takes_pocketfft_on_cpu_up_to_its_measured_size(monkeypatch, mode):
    monkeypatch.setattr(conv, "native_fits", lambda *args: False)  # as where it cannot build
    monkeypatch.setattr(conv, "AUTO_POCKETFFT_MAX_N", {m: 64 for m in MODES})
    short, long = 16, 256  # transform lengths within and past 64 in every mode
    assert resolve_backend("auto", short, mode) == "pocketfft"
    assert resolve_backend("auto", long, mode) == "fft"
    assert resolve_backend("auto", short, mode, "cuda") == "fft"  # CUDA stays on torch.fft
    x, kernel, _ = make(2, short, 3, mode)
    name = type(global_conv(x, kernel, mode=mode).grad_fn).__name__
    assert name == "_PocketSpectralConvBackward", name


def test_pocketfft_refuses_non_cpu_tensors():
    x, kernel, _ = make(1, 4, 2, "circular")
    with pytest.raises(ValueError, match="runs on CPU only"):
        global_conv(x.to("meta"), kernel.to("meta"), backend="pocketfft")


# ---------------------------------------------------------------------------------------------
# FlashFFTConv glue, checked on CPU against a stand-in with the package's documented semantics


class FakeFlashFFTConv(torch.nn.Module):
    """y = irfft(rfft(u, n) * rfft(k, n))[..., :L] for u (B, D, L) bf16/fp16, k (D, L) float32."""

    calls = 0

    def __init__(self, seqlen, dtype=torch.float16):
        super().__init__()
        self.n = seqlen

    def forward(self, u, k):
        assert u.is_contiguous() and k.dtype == torch.float32 and k.shape == u.shape[1:]
        FakeFlashFFTConv.calls += 1
        L = u.shape[-1]
        U, K = torch.fft.rfft(u.float(), n=self.n), torch.fft.rfft(k, n=self.n)
        return torch.fft.irfft(U * K, n=self.n)[..., :L].to(u.dtype)


@pytest.fixture
def fake_flash(monkeypatch):
    monkeypatch.setitem(
        sys.modules, "flashfftconv", types.SimpleNamespace(FlashFFTConv=FakeFlashFFTConv)
    )
    monkeypatch.setattr(flash, "DEVICE_TYPES", ("cpu",))
    monkeypatch.setattr(flash, "_CONVS", {})
    flash._importable.cache_clear()
    FakeFlashFFTConv.calls = 0
    yield
    flash._importable.cache_clear()


def test_auto_runs_causal_bf16_through_flashfftconv_when_available(fake_flash):
    x, kernel, _ = make(2, 64, 4, "causal", seed=6)
    lengths = torch.tensor([64, 30])
    want = global_conv(x, kernel[:10], mode="causal", lengths=lengths, backend="direct")
    got = global_conv(x.bfloat16(), kernel[:10].bfloat16(), mode="causal", lengths=lengths)
    assert FakeFlashFFTConv.calls == 1 and got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), want, rtol=3e-2, atol=0.3)
    assert (got[1, 30:] == 0).all()
    # explicit fft, float32 input, other modes and odd lengths stay on torch.fft
    global_conv(x.bfloat16(), kernel.bfloat16(), mode="causal", backend="fft")
    global_conv(x.float(), kernel.float(), mode="causal")
    global_conv(x.bfloat16(), kernel.bfloat16(), mode="circular")
    global_conv(x[:, :63].bfloat16(), kernel.bfloat16(), mode="causal")
    assert FakeFlashFFTConv.calls == 1


def test_cpu_calls_never_look_for_flashfftconv(monkeypatch):
    def boom():
        raise AssertionError("flashfftconv was looked up for a CPU call")

    monkeypatch.setattr(flash, "_importable", boom)
    x, kernel, _ = make(2, 64, 4, "causal")
    global_conv(x.bfloat16(), kernel.bfloat16(), mode="causal")
    assert flash.fft_size(64) == 256 and flash.fft_size(300) == 1024


def test_live_tensor_bytes_ignores_tensors_that_existed_before():
    outside = torch.ones(1000)
    assert peak_bytes(lambda: outside[:10] + 1) == 40
