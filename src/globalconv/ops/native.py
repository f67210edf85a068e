"""The FFT path as one compiled kernel, CPU only: real FFTs along the length axis of the user's
(B, L, D) layout, vectorised across channels, with the spectral products fused in
(``native_fft.cpp`` beside this file says how).

The same function as ``globalconv.ops.fft.spectral_conv`` (see its formulas) for transform sizes
that are powers of two: x and grad_y are each read once and the outputs written once, with no
(B, L, D) <-> (B, D, N) copies; the forward keeps the input's spectrum X (the input's size) and
the kernel's for the backward; the kernel gradient's batch sum is taken strip by strip in cache.

The kernel is compiled on first use with the system's C++ compiler (``$CXX`` or ``c++``, with
OpenMP, ``-march=native``) into a cache directory (``$GLOBALCONV_CACHE_DIR``, else
``~/.cache/globalconv``; where that cannot be written or loaded from, a private 0700 directory
under the temp directory, refused if anyone else could write to it), keyed by the source,
the compiler and the CPU, under a file lock so that parallel workers build it once; a couple of
seconds of compiling, once per machine. Where it cannot be built, ``available()`` is False and
says why (``unavailable_reason()``), the outcome is kept for the process, and ``auto`` keeps the
torch.fft path; ``GLOBALCONV_NATIVE=0`` turns it off. It runs ``torch.get_num_threads()``
OpenMP threads; its ``libgomp.so.1`` resolves to the copy torch's wheel has loaded, so the two
share one thread pool.

Only first derivatives: the backward is not itself differentiable.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from globalconv.ops.fft import first_derivatives_only

SOURCE = Path(__file__).with_name("native_fft.cpp")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
MIN_SIZE = 4  # the packed real transform needs N/2 >= 2


class NativeUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here; the message says why."""


def supports(n_fft: int) -> bool:
    """Whether the kernel transforms this size: a power of two, at least MIN_SIZE."""
    return n_fft >= MIN_SIZE and n_fft & (n_fft - 1) == 0


def transform_size(n: int) -> int:
    """The smallest size >= n the kernel transforms (a power of two)."""
    return max(MIN_SIZE, 1 << (max(n, 1) - 1).bit_length())


def available() -> bool:
    """Whether the kernel is built (building it now if needed) and loads."""
    return unavailable_reason() is None


def unavailable_reason() -> str | None:
    """Why the kernel is unavailable, or None when it is available. The first call builds or
    loads it; the outcome, failure included, is kept for the process, so a failed build is not
    retried on every call. An optional kernel never breaks ``auto``: any error becomes a reason."""
    if _suspensions:
        return "suspended (inside native.suspended())"
    return _load_outcome()


@cache
def _load_outcome() -> str | None:
    try:
        _library()
    except NativeUnavailable as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - e.g. a missing source file, an odd filesystem
        return f"loading failed unexpectedly: {type(error).__name__}: {error}"
    return None


def require() -> None:
    """Raises NativeUnavailable, saying why, unless the kernel is available."""
    reason = unavailable_reason()
    if reason is not None:
        raise NativeUnavailable(
            f"backend 'native' is unavailable here: {reason}; use backend='fft' (auto does)"
        )


_suspensions: list[None] = []


@contextmanager
def suspended() -> Iterator[None]:
    """Within, the kernel counts as unavailable, so ``auto`` takes torch.fft: for tools that see
    torch's operators only (torch's FLOP counter, the profiler). Process-wide: every thread's
    ``auto`` sees it."""
    _suspensions.append(None)
    try:
        yield
    finally:
        _suspensions.pop()


def spectral_conv(
    x: Tensor, kernel: Tensor, n_fft: int, *, correlate: bool, out_len: int
) -> Tensor:
    """y[b, t, c] = sum_s k[s, c] * x[b, (t -/+ s) mod n_fft, c] for t < out_len; (B, out_len, D).

    x (B, L, D) and kernel (T, D) or (B, T, D) are real float32 or float64 CPU tensors, L, T and
    out_len at most ``n_fft``, a power of two. ``correlate`` picks t+s over t-s.
    """
    _check(x, kernel, n_fft, out_len)
    keep = torch.is_grad_enabled() and kernel.requires_grad  # the kernel gradient needs X
    return _NativeSpectralConv.apply(x, kernel, n_fft, correlate, out_len, keep)


def _check(x: Tensor, kernel: Tensor, n_fft: int, out_len: int) -> None:
    """Everything the kernel trusts: it reads and writes raw memory."""
    if x.device.type != "cpu" or kernel.device.type != "cpu":
        raise ValueError(
            f"backend 'native' runs on CPU only, got x on {x.device} and the kernel on "
            f"{kernel.device}; use 'fft'"
        )
    if x.dim() != 3 or kernel.dim() not in (2, 3) or kernel.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"backend 'native' takes x (B, L, D) and a kernel (T, D) or (B, T, D), got "
            f"{tuple(x.shape)} and {tuple(kernel.shape)}"
        )
    if kernel.dim() == 3 and kernel.shape[0] != x.shape[0]:
        raise ValueError(f"a per-sequence kernel needs B={x.shape[0]} rows, got {kernel.shape[0]}")
    if not supports(n_fft):
        raise ValueError(f"backend 'native' transforms powers of two >= {MIN_SIZE}, got {n_fft}")
    if x.dtype not in (torch.float32, torch.float64) or kernel.dtype != x.dtype:
        raise ValueError(
            f"backend 'native' takes float32 or float64 x and kernel of one dtype, got "
            f"{x.dtype} and {kernel.dtype}"
        )
    if max(x.shape[1], kernel.shape[-2], out_len) > n_fft or out_len < 0:
        raise ValueError(
            f"lengths {x.shape[1]} (x), {kernel.shape[-2]} (kernel), {out_len} (output) must be "
            f"at most the transform size {n_fft}"
        )
    if max(*x.shape, *kernel.shape, n_fft + 2) >= 2**31:  # passed as C ints
        raise ValueError(
            f"backend 'native' takes sizes below 2^31, got x {tuple(x.shape)}, kernel "
            f"{tuple(kernel.shape)}, transform {n_fft}; use backend='fft'"
        )


# ---------------------------------------------------------------------------------------------
# the autograd function


def _ready(t: Tensor) -> Tensor:
    return t.detach().resolve_neg().contiguous()


def _ptr(t: Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex64 if dtype == torch.float32 else torch.complex128


def _call(name: str, dtype: torch.dtype, *args) -> None:
    suffix = "f32" if dtype == torch.float32 else "f64"
    require()  # the outcome is kept for the process: a failed build is not retried per call
    status = getattr(_library(), f"gc_{name}_{suffix}")(*args, torch.get_num_threads())
    if status != 0:  # the only failure the kernel reports: memory
        raise MemoryError(
            "backend 'native' could not allocate its strip buffers or twiddle tables (about "
            "512 bytes per transform point per thread); use fewer threads or backend='fft'"
        )


class _NativeSpectralConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, n_fft: int, correlate: bool, out_len: int, keep):
        x = _ready(x)
        B, L, D = x.shape
        batched = kernel.dim() == 3
        k = _ready(kernel if batched else kernel.unsqueeze(0))  # (1 or B, T, D)
        F = n_fft // 2 + 1
        K = x.new_empty(k.shape[0], F, D, dtype=_complex(x.dtype))
        _call("rfft", x.dtype, _ptr(k), k.shape[0], k.shape[1], D, n_fft, _ptr(K))
        X = x.new_empty(B, F, D, dtype=K.dtype) if keep else None  # for the kernel gradient
        y = x.new_empty(B, out_len, D)
        _call(
            "forward", x.dtype,
            _ptr(x), B, L, D, _ptr(K), k.shape[0], int(correlate), n_fft, _ptr(y), out_len, _ptr(X),
        )  # fmt: skip
        ctx.save_for_backward(K, X)
        ctx.shape = (L, k.shape[1], n_fft, correlate, batched)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor):
        first_derivatives_only("native")
        K, X = ctx.saved_tensors
        L, taps, n_fft, correlate, batched = ctx.shape
        need_x, need_k = ctx.needs_input_grad[:2]
        if need_k and X is None:  # the kernel would read a null spectrum
            raise RuntimeError(
                "global_conv's native backend kept no input spectrum to differentiate"
            )
        g = _ready(grad_y)
        B, out_len, D = g.shape
        grad_x = g.new_empty(B, L, D) if need_x else None
        grad_k = g.new_empty(B if batched else 1, taps, D) if need_k else None
        _call(
            "backward", g.dtype,
            _ptr(g), B, out_len, D, _ptr(K), K.shape[0], int(correlate), n_fft,
            _ptr(grad_x), L, _ptr(X if need_k else None), _ptr(grad_k), taps,
        )  # fmt: skip
        if grad_k is not None and not batched:
            grad_k = grad_k[0]
        return grad_x, grad_k, None, None, None, None


# ---------------------------------------------------------------------------------------------
# building and loading

_INT = ctypes.c_int
_PTR = ctypes.c_void_p
_SIGNATURES = {  # argument types of gc_<name>_f32/_f64 in native_fft.cpp, in order
    "rfft": [_PTR, _INT, _INT, _INT, _INT, _PTR, _INT],
    "forward": [_PTR, _INT, _INT, _INT, _PTR, _INT, _INT, _INT, _PTR, _INT, _PTR, _INT],
    "backward": [_PTR, _INT, _INT, _INT, _PTR, _INT, _INT, _INT, _PTR, _INT, _PTR, _PTR, _INT,
                 _INT],
}  # fmt: skip


def cache_dir() -> Path:
    """Where built kernels are kept: $GLOBALCONV_CACHE_DIR, else $XDG_CACHE_HOME/globalconv."""
    if os.environ.get("GLOBALCONV_CACHE_DIR"):
        return Path(os.environ["GLOBALCONV_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "globalconv"


@cache
def _library() -> ctypes.CDLL:
    """The built and loaded kernel (built on first use); raises NativeUnavailable."""
    if os.environ.get("GLOBALCONV_NATIVE", "1") == "0":
        raise NativeUnavailable("turned off by GLOBALCONV_NATIVE=0")
    if platform.system() != "Linux":
        raise NativeUnavailable(f"built on Linux only, not on {platform.system()}")
    compiler = shlex.split(os.environ.get("CXX", "")) or [
        shutil.which("c++") or shutil.which("g++")
    ]
    if not compiler[0]:
        raise NativeUnavailable("no C++ compiler found (set $CXX or install g++)")
    try:
        version = subprocess.run(
            [*compiler, "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        command = " ".join(compiler)
        raise NativeUnavailable(f"the C++ compiler {command!r} does not run: {error}") from None
    key = hashlib.sha256()
    flags = " ".join([*compiler[1:], *FLAGS])  # words of $CXX past the compiler are flags too
    for part in (SOURCE.read_bytes(), version.encode(), flags.encode(), _cpu().encode()):
        key.update(part)
    name = f"native_fft-{key.hexdigest()[:16]}.so"
    # A cache that cannot be written or loaded from (a read-only home, a noexec mount) falls back
    # to a private directory under the temp directory.
    errors = []
    for where in (lambda: cache_dir() / "native", _private_temp_dir):
        directory = "the temp directory"
        try:
            directory = where()
            path = _build_in(directory, name, compiler)
            library = ctypes.CDLL(str(path))
        except OSError as error:
            errors.append(f"{directory}: {error}")
            continue
        for function_name, argtypes in _SIGNATURES.items():
            for suffix in ("f32", "f64"):
                function = getattr(library, f"gc_{function_name}_{suffix}")
                function.argtypes, function.restype = argtypes, ctypes.c_int
        return library
    raise NativeUnavailable(f"cannot build or load the kernel in {' nor '.join(errors)}")


def _private_temp_dir() -> Path:
    """$TMPDIR/globalconv-<uid>/native, made 0700; refused (OSError) unless this user owns it and
    nobody else can write to it: a library another user could plant must never be loaded."""
    base = Path(tempfile.gettempdir()) / f"globalconv-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise OSError(f"{base} is not a private directory of this user; remove it")
    return base / "native"


def _build_in(directory: Path, name: str, compiler: list[str]) -> Path:
    """directory/name, compiled there unless present; OSError where it cannot be written."""
    from filelock import FileLock

    path = directory / name
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():  # built by another process while we waited
            return path
        with tempfile.TemporaryDirectory(dir=directory) as scratch:
            built = Path(scratch) / name
            command = [*compiler, *FLAGS, str(SOURCE), "-o", str(built)]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                raise NativeUnavailable("compiling the kernel took over 300 s") from None
            if result.returncode != 0:
                first = (result.stderr.strip().splitlines() or ["(no output)"])[0]
                raise NativeUnavailable(f"compiling the kernel failed: {first}")
            os.replace(built, path)  # atomic: a reader sees the whole library or none
    return path


def _cpu() -> str:
    """What -march=native compiles for: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    wanted = ("model name", "flags", "Features", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))
