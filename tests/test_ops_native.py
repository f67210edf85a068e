"""The native kernel (globalconv.ops.native): exactness beyond what the shared backend tests in
test_ops.py / test_ops_fast.py cover (full strips, batched kernels, threads, sizes), the build
cache, and how ``auto`` and explicit calls behave where it cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from globalconv.analysis.bench import peak_bytes
from globalconv.ops import global_conv, native, resolve_backend

# what needs the kernel itself: a compiler, and the kernel not turned off by GLOBALCONV_NATIVE=0
# (test_the_kernel_builds_here fails wherever a compiler exists and it is not built)
needs_compiler = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler"
)
turned_off = os.environ.get("GLOBALCONV_NATIVE") == "0"


def apply(marks):
    def decorate(test):
        for mark in marks:
            test = mark(test)
        return test

    return decorate


needs_native = [
    needs_compiler,
    pytest.mark.skipif(turned_off, reason="turned off by GLOBALCONV_NATIVE=0"),
]


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """An empty kernel cache in tmp_path; the loaded library forgotten before and after."""
    monkeypatch.setenv("GLOBALCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GLOBALCONV_NATIVE", raising=False)  # the build itself is under test
    native._library.cache_clear()
    native._load_outcome.cache_clear()
    yield tmp_path
    native._library.cache_clear()
    native._load_outcome.cache_clear()


def reference(x, kernel, n_fft, correlate, out_len):
    """irfft(rfft(x) * M)[:out_len] in float64 through torch.fft, M = K or conj(K)."""
    X = torch.fft.rfft(x.double(), n=n_fft, dim=1)
    K = torch.fft.rfft(kernel.double(), n=n_fft, dim=-2)
    return torch.fft.irfft(X * (K.conj() if correlate else K), n=n_fft, dim=1)[:, :out_len]


@apply(needs_native)
def test_the_kernel_builds_here():
    """CI and the development machines have a compiler: the kernel must build there, so that
    the native cases of the shared operator tests never skip silently (unless turned off)."""
    if os.environ.get("GLOBALCONV_NATIVE") == "0":
        pytest.skip("turned off by GLOBALCONV_NATIVE=0")
    assert native.unavailable_reason() is None


@apply(needs_native)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize(
    "B, L, T, D, n_fft, out_len",
    [
        (3, 64, 64, 70, 64, 64),  # full strips of 32 (float) / 16 (double) and a partial one
        (2, 5, 3, 33, 16, 16),  # zero padding of x and kernel, whole transform out
        (1, 2, 2, 1, 4, 3),  # the smallest size (N/2 = 2 points) and one channel
        (2, 40, 79, 16, 128, 40),  # a kernel longer than x
        (2, 512, 512, 8, 512, 512),  # log2(N/2) even: radix-4 passes only
    ],
)
def test_forward_and_gradients_match_float64_torch_fft(dtype, batched, B, L, T, D, n_fft, out_len):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, D, generator=g, dtype=dtype, requires_grad=True)
    kshape = (B, T, D) if batched else (T, D)
    kernel = torch.randn(*kshape, generator=g, dtype=dtype, requires_grad=True)
    grad = torch.randn(B, out_len, D, generator=g, dtype=dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for correlate in (False, True):
        y = native.spectral_conv(x, kernel, n_fft, correlate=correlate, out_len=out_len)
        gx, gk = torch.autograd.grad(y, (x, kernel), grad)
        x64 = x.detach().double().requires_grad_()
        k64 = kernel.detach().double().requires_grad_()
        want = reference(x64, k64, n_fft, correlate, out_len)
        wx, wk = torch.autograd.grad(want, (x64, k64), grad.double())
        for got, ref in ((y, want), (gx, wx), (gk, wk)):
            assert got.dtype == dtype
            torch.testing.assert_close(got.double(), ref, **tol)


@apply(needs_native)
def test_results_do_not_depend_on_the_thread_count():
    """Strips are independent and the kernel gradient sums the batch in order within a strip,
    so one thread and two give the same bits."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 256, 96, generator=g, requires_grad=True)
    kernel = torch.randn(256, 96, generator=g, requires_grad=True)
    grad = torch.randn(4, 256, 96, generator=g)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            y = global_conv(x, kernel, backend="native")
            results.append((y, *torch.autograd.grad(y, (x, kernel), grad)))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


@apply(needs_native)
@pytest.mark.parametrize("mode", ["circular", "causal", "full"])
def test_non_power_of_two_lengths_are_exact_through_padding(mode):
    """Circular mode at L = 48 (not a power of two) runs the ragged formula at N = 128."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 48, 5, generator=g, dtype=torch.float64)
    kernel = torch.randn(95 if mode == "full" else 48, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        global_conv(x, kernel, mode=mode, backend="native"),
        global_conv(x, kernel, mode=mode, backend="direct"),
    )


def test_bad_arguments_are_value_errors_before_any_raw_memory_is_touched():
    x, kernel = torch.zeros(2, 8, 4), torch.zeros(8, 4)
    call = lambda x, kernel, n=8: native.spectral_conv(  # noqa: E731
        x, kernel, n, correlate=True, out_len=8
    )
    with pytest.raises(ValueError, match=r"got \(2, 8, 4\) and \(8, 3\)"):
        call(x, torch.zeros(8, 3))  # channel mismatch
    with pytest.raises(ValueError, match="needs B=2 rows, got 3"):
        call(x, torch.zeros(3, 8, 4))
    with pytest.raises(ValueError, match="takes x"):
        call(torch.zeros(8, 4), kernel)
    with pytest.raises(ValueError, match="CPU only"):
        call(x, kernel.to("meta"))
    with pytest.raises(ValueError, match="at most the transform size"):
        native.spectral_conv(x, kernel, 8, correlate=True, out_len=-1)
    wide = torch.zeros(1, 1, 1).expand(1, 8, 1 << 31)  # 2^31 channels, no memory: not a C int
    with pytest.raises(ValueError, match=r"sizes below 2\^31"):
        call(wide, torch.zeros(1, 1).expand(8, 1 << 31))


def test_sizes_it_takes():
    assert [n for n in range(1, 70) if native.supports(n)] == [4, 8, 16, 32, 64]
    assert [native.transform_size(n) for n in (1, 4, 5, 64, 65)] == [4, 4, 8, 64, 128]
    with pytest.raises(ValueError, match="powers of two"):
        native.spectral_conv(torch.zeros(1, 6, 1), torch.zeros(6, 1), 6, correlate=True, out_len=6)
    with pytest.raises(ValueError, match="at most the transform size"):
        native.spectral_conv(torch.zeros(1, 9, 1), torch.zeros(8, 1), 8, correlate=True, out_len=8)
    with pytest.raises(ValueError, match="float32 or float64"):
        native.spectral_conv(
            torch.zeros(1, 8, 1), torch.zeros(8, 1).double(), 8, correlate=True, out_len=8
        )


@apply(needs_native)
def test_auto_takes_native_on_cpu_where_it_fits():
    auto = lambda L, mode="circular", channels=64: resolve_backend(  # noqa: E731
        "auto", L, mode, "cpu", channels=channels
    )
    assert auto(64) == "native" and auto(1 << 15) == "native"
    assert auto(48) == "fft"  # not a power of two
    assert auto(2) == "fft"  # below the smallest size, 4
    assert auto(1 << 16) == "fft"  # past AUTO_NATIVE_MAX_N: a strip's buffers leave the cache
    assert auto(64, channels=16) == "fft"  # narrower than a strip
    assert auto(64, channels=None) == "native"  # channels not known
    for mode in ("causal", "full"):  # the next power of two, within 1.25x of the fft path's size
        assert auto(1000, mode) == "native"  # 2048 against 2000
        assert auto(48, mode) == "fft" and auto(1100, mode) == "fft"  # 128 vs 96, 4096 vs 2250
        assert auto(1 << 14, mode) == "native" and auto(1 << 15, mode) == "fft"  # N = 2^15, 2^16
    assert resolve_backend("auto", 64, "circular", "cuda", channels=64) == "fft"
    x = torch.randn(2, 128, 32, requires_grad=True)
    name = type(global_conv(x, torch.randn(128, 32)).grad_fn).__name__
    assert name == "_NativeSpectralConvBackward"
    x = torch.randn(2, 128, 8, requires_grad=True)  # 8 channels: auto keeps torch.fft
    assert type(global_conv(x, torch.randn(128, 8)).grad_fn).__name__ == "_SpectralConvBackward"


def test_compiled_graphs_keep_torch_fft(monkeypatch):
    """torch.compile cannot trace a ctypes call (fullgraph=True would fail)."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert resolve_backend("auto", 64, "circular", "cpu", channels=64) == "fft"


@apply(needs_native)
def test_auto_compiles_whole_graphs():
    x = torch.randn(2, 64, 32, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(64, 32, dtype=torch.float64, requires_grad=True)
    assert resolve_backend("auto", 64, "circular", "cpu", channels=32) == "native"  # eagerly
    compiled = torch.compile(lambda a, k: global_conv(a, k), fullgraph=True, backend="eager")
    y = compiled(x, kernel)
    gx, gk = torch.autograd.grad(y.square().sum(), (x, kernel))
    want = global_conv(x, kernel, backend="direct")
    wx, wk = torch.autograd.grad(want.square().sum(), (x, kernel))
    for got, ref in ((y, want), (gx, wx), (gk, wk)):
        torch.testing.assert_close(got, ref)


NATIVE = pytest.param("native", marks=needs_native)


@pytest.mark.parametrize("backend", ["fft", NATIVE])
def test_inference_stores_no_spectrum(backend):
    """Under no_grad the forward keeps nothing for a backward that cannot come, even with a
    kernel that requires grad (a parameter): its peak is the output and the kernel's spectrum."""
    x = torch.randn(4, 256, 64)
    kernel = torch.randn(256, 64, requires_grad=True)
    run = lambda: global_conv(x, kernel, backend=backend)  # noqa: E731
    with torch.no_grad():
        inference = peak_bytes(run)
    training = peak_bytes(run)  # grad enabled: the input's spectrum is kept
    assert training - inference >= 0.9 * x.numel() * 4, (training, inference)


def test_where_it_cannot_build_auto_keeps_torch_fft_and_explicit_calls_say_why(
    fresh_build, monkeypatch
):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert not native.available()
    assert "does not run" in native.unavailable_reason()
    assert resolve_backend("auto", 64, "circular") == "fft"
    x = torch.randn(1, 64, 2, dtype=torch.float64)
    kernel = torch.randn(64, 2, dtype=torch.float64)
    torch.testing.assert_close(global_conv(x, kernel), global_conv(x, kernel, backend="direct"))
    with pytest.raises(native.NativeUnavailable, match="backend 'native' is unavailable here"):
        global_conv(x, torch.randn(64, 2), backend="native")


def test_it_can_be_turned_off(fresh_build, monkeypatch):
    monkeypatch.setenv("GLOBALCONV_NATIVE", "0")
    assert native.unavailable_reason() == "turned off by GLOBALCONV_NATIVE=0"


def test_a_failed_build_is_not_retried_on_every_call(fresh_build, monkeypatch):
    log = fresh_build / "calls"
    compiler = fresh_build / "cxx"
    compiler.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = --version ] && echo fake && exit 0\nexit 1\n'
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    for _ in range(3):
        assert resolve_backend("auto", 64, "circular") == "fft"
        assert "compiling the kernel failed" in native.unavailable_reason()
    assert len(log.read_text().splitlines()) == 2  # one version query, one compile


@needs_compiler
def test_an_unexpected_error_while_loading_leaves_auto_working(fresh_build, monkeypatch):
    monkeypatch.setattr(native, "SOURCE", fresh_build / "missing.cpp")
    assert "FileNotFoundError" in native.unavailable_reason()
    x, kernel = torch.randn(1, 64, 2, dtype=torch.float64), torch.randn(64, 2, dtype=torch.float64)
    torch.testing.assert_close(global_conv(x, kernel), global_conv(x, kernel, backend="direct"))


@needs_compiler
def test_a_failing_compile_is_reported_and_leaves_no_library(fresh_build, monkeypatch):
    broken = fresh_build / "broken.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setattr(native, "SOURCE", broken)
    assert "compiling the kernel failed" in native.unavailable_reason()
    assert not list((fresh_build / "native").glob("*.so"))


@needs_compiler
def test_the_build_is_cached_by_source_compiler_and_cpu(fresh_build, monkeypatch):
    assert native.available()
    built = list((fresh_build / "native").glob("native_fft-*.so"))
    assert len(built) == 1
    calls = []
    real_run = native.subprocess.run
    spy = lambda cmd, **kw: calls.append(cmd) or real_run(cmd, **kw)  # noqa: E731
    monkeypatch.setattr(native.subprocess, "run", spy)

    def reload():
        native._library.cache_clear()
        native._load_outcome.cache_clear()
        return native.available()

    assert reload()  # loaded from the cache: the compiler is only asked its version
    assert len(calls) == 1 and "--version" in calls[0], calls
    monkeypatch.setattr(native, "_cpu", lambda: "another CPU")
    assert reload()  # another key, another build beside the first
    assert len(list((fresh_build / "native").glob("native_fft-*.so"))) == 2


@apply(needs_native)
def test_suspended_hands_auto_back_to_torch_fft():
    """For tools that see torch's operators only (the FLOP counter)."""
    assert resolve_backend("auto", 1024, "circular") == "native"
    with native.suspended():
        assert resolve_backend("auto", 1024, "circular") == "fft"
        assert "suspended" in native.unavailable_reason()
    assert native.available()


@needs_compiler
def test_the_kernel_is_clean_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    compiler = shutil.which("c++") or shutil.which("g++")
    harness = Path(__file__).with_name("native") / "sanitize_kernel.cpp"
    binary = tmp_path / "sanitize_kernel"
    flags = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    build = [compiler, *flags, "-fopenmp", "-std=c++17", str(harness), str(native.SOURCE)]
    built = subprocess.run([*build, "-o", str(binary)], capture_output=True, text=True)
    if built.returncode != 0 and "sanitize" in built.stderr:  # a compiler without the runtimes
        pytest.skip(f"no sanitizer runtime: {built.stderr.strip().splitlines()[0]}")
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stdout + ran.stderr


@needs_compiler
def test_a_temp_directory_another_user_could_write_is_refused(fresh_build, monkeypatch):
    temp = fresh_build / "tmp"
    temp.mkdir()
    monkeypatch.setattr(native.tempfile, "tempdir", str(temp))
    planted = temp / f"globalconv-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # as if planted by another user: writable by all
    assert native.available()  # the cache works: the temp directory is never consulted
    native._library.cache_clear()
    native._load_outcome.cache_clear()
    blocked = fresh_build / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("GLOBALCONV_CACHE_DIR", str(blocked))  # the cache fails: fallback refused
    assert "not a private directory" in native.unavailable_reason()
    assert not list(planted.rglob("*.so"))


@apply(needs_native)
def test_running_out_of_memory_is_a_memory_error_not_a_crash(tmp_path):
    """A transform whose strip buffers cannot be allocated (512 bytes per point per thread:
    8 GiB at N = 2^24) under a 3 GiB address-space limit; in a child process."""
    script = (
        "import resource, torch\n"
        "from globalconv.ops import native\n"
        "assert native.available()\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "used = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (used + (3 << 30), hard))\n"
        "x, k = torch.zeros(1, 8, 1), torch.zeros(8, 1)\n"
        "try:\n"
        "    native.spectral_conv(x, k, 1 << 24, correlate=True, out_len=8)\n"
        "except MemoryError as error:\n"
        "    print('MemoryError', error)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert ran.returncode == 0 and "could not allocate its strip buffers" in ran.stdout, (
        ran.stdout + ran.stderr
    )


@needs_compiler
def test_an_unwritable_cache_falls_back_to_the_temp_directory(fresh_build, monkeypatch):
    blocked = fresh_build / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("GLOBALCONV_CACHE_DIR", str(blocked))
    monkeypatch.setattr(native.tempfile, "tempdir", str(fresh_build / "tmp"))
    (fresh_build / "tmp").mkdir()
    assert native.available()
    assert len(list((fresh_build / "tmp").glob("globalconv-*/native/native_fft-*.so"))) == 1


@apply(needs_native)
def test_a_kernel_gradient_without_a_kept_spectrum_is_an_error_not_a_null_read():
    """spectral_conv keeps X exactly when the kernel gradient can be asked; called directly
    without it, the backward refuses rather than hand the kernel a null spectrum."""
    x, kernel = torch.randn(1, 8, 32), torch.randn(8, 32, requires_grad=True)
    y = native._NativeSpectralConv.apply(x, kernel, 8, True, 8, False)
    with pytest.raises(RuntimeError, match="kept no input spectrum"):
        y.sum().backward()
