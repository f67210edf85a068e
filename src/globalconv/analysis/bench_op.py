"""The measurements of ``globalconv bench op``: the global convolution on this machine beside the
FFT floor (one bare rfft + irfft pair over the length axis), attention and the literal direct
convolution, in the parts of ``PARTS``: each ``part_*`` measures its rows, each ``print_*`` prints
them, ``run`` does the parts asked for. What each part times: ``globalconv bench op --help``.

Every number is a median of interleaved rounds after warm-up; ratios are taken within a row,
so they hold up on a shared machine better than the absolute times.

One file (past 400 lines) because the parts share ``Settings`` and the step builders, and each
part's measurement sits beside the printing of its rows.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from globalconv.analysis import bench
from globalconv.analysis.bench import ms, ratio
from globalconv.core.tables import format_table

PARTS = ("table", "breakdown", "crossover", "memory", "model")


@dataclasses.dataclass
class Settings:
    """What to measure and at which sizes (``globalconv bench op``'s options)."""

    parts: list[str]  # of PARTS
    sizes: list[int]  # lengths L of the table, breakdown and memory parts
    modes: list[str]  # operator modes
    batch: int
    dim: int  # channels D
    heads: int  # of the attention mixer
    repeats: int  # timed rounds, median kept
    warmup: int  # untimed rounds first
    direct_max_len: int  # the O(L^2) direct path is timed up to this L
    attention_max_len: int  # and the attention mixer
    crossover_lengths: list[int]
    model_len: int
    model_batch: int
    model_layers: int
    model_steps: int  # timed training steps per model
    device: str
    quiet: bool = False  # no progress lines


# ---------------------------------------------------------------------------------------------
# what gets timed


def _inputs(mode: str, B: int, L: int, D: int, device: str, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    rows = 2 * L - 1 if mode == "full" else L
    x = torch.randn(B, L, D, device=device, generator=g, requires_grad=True)
    kernel = (torch.randn(rows, D, device=device, generator=g) / rows**0.5).requires_grad_()
    grad = torch.randn(B, L, D, device=device, generator=g)
    return x, kernel, grad


def op_step(
    mode: str, backend: str, B: int, L: int, D: int, device: str, backward: bool = True
) -> Callable[[], None]:
    """Forward+backward (or, with ``backward=False``, the forward under no_grad, as inference
    runs it) of ``global_conv`` on (B, L, D) input."""
    from globalconv.ops import global_conv

    x, kernel, grad = _inputs(mode, B, L, D, device)

    def step() -> None:
        x.grad = kernel.grad = None
        global_conv(x, kernel, mode=mode, backend=backend).backward(grad)

    def forward() -> None:
        with torch.no_grad():
            global_conv(x, kernel, mode=mode, backend=backend)

    return step if backward else forward


def plain_step(mode: str, B: int, L: int, D: int, device: str) -> Callable[[], None]:
    """Forward+backward of the plain composition the FFT backend replaces: rfft, multiply, irfft
    under autograd, on the (B, L, D) layout (circular and causal)."""
    from globalconv.ops import fft_size

    x, kernel, grad = _inputs(mode, B, L, D, device)
    n = fft_size(mode, L)

    def step() -> None:
        x.grad = kernel.grad = None
        X = torch.fft.rfft(x, n=n, dim=1)
        K = torch.fft.rfft(kernel, n=n, dim=0)
        K = K.conj() if mode == "circular" else K
        torch.fft.irfft(X * K, n=n, dim=1)[:, :L].backward(grad)

    return step


def floor_step(mode: str, B: int, L: int, D: int, device: str) -> Callable[[], None]:
    """The FFT floor: one rfft + irfft pair over the last axis of a contiguous (B, D, N)."""
    from globalconv.ops import fft_size

    n = fft_size(mode, L)
    signal = torch.randn(B, D, n, device=device)
    return lambda: torch.fft.irfft(torch.fft.rfft(signal, dim=-1), n=n, dim=-1)


def mixer_step(name: str, causal: bool, B: int, L: int, D: int, heads: int, device: str):
    """Forward+backward of a registered mixer on (B, L, D) input."""
    from globalconv import mixers

    options = {"heads": heads} if name == "attention" else {}
    torch.manual_seed(0)
    mixer = mixers.build(name, d_model=D, max_len=L, causal=causal, **options).to(device)
    x, _, grad = _inputs("causal", B, L, D, device)

    def step() -> None:
        x.grad = None
        mixer.zero_grad(set_to_none=True)
        mixer(x).backward(grad)

    return step


def model_step(mixer: str, B: int, L: int, D: int, layers: int, heads: int, device: str):
    """One training step (forward, cross-entropy, backward, AdamW) of an encoder Transformer."""
    from globalconv.config import ModelConfig
    from globalconv.models import Transformer

    options = {"heads": heads} if mixer == "attention" else {}
    cfg = ModelConfig(mixer=mixer, mixer_options=options, d_model=D, n_layers=layers, dropout=0.0)
    torch.manual_seed(0)
    model = Transformer(cfg, max_len=L, num_outputs=10, vocab_size=256).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator(device=device).manual_seed(1)
    tokens = torch.randint(0, 256, (B, L), device=device, generator=g)
    labels = torch.randint(0, 10, (B,), device=device, generator=g)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(tokens), labels).backward()
        optimizer.step()

    return step, model.num_params()


# ---------------------------------------------------------------------------------------------
# the parts


def part_table(settings: Settings) -> list[dict[str, Any]]:
    from globalconv.ops import fft_size, native, resolve_backend

    B, D, dev = settings.batch, settings.dim, settings.device
    cpu = torch.device(dev).type == "cpu"
    with_native = cpu and native.available()
    if cpu and not with_native:
        print(f"(backend 'native' left out: {native.unavailable_reason()})")
    rows = []
    for mode in settings.modes:
        for L in settings.sizes:
            candidates = {
                "op": op_step(mode, "fft", B, L, D, dev),
                "floor": floor_step(mode, B, L, D, dev),
                "forward": op_step(mode, "fft", B, L, D, dev, backward=False),
            }
            if with_native:
                candidates["native"] = op_step(mode, "native", B, L, D, dev)
                candidates["native_forward"] = op_step(mode, "native", B, L, D, dev, False)
            if cpu:
                candidates["pocket"] = op_step(mode, "pocketfft", B, L, D, dev)
                candidates["pocket_forward"] = op_step(
                    mode, "pocketfft", B, L, D, dev, backward=False
                )
            if L <= settings.direct_max_len:
                candidates["direct"] = op_step(mode, "direct", B, L, D, dev)
            if mode != "full":
                candidates["plain"] = plain_step(mode, B, L, D, dev)
                causal = mode == "causal"
                candidates["mixer"] = mixer_step(
                    "global_conv", causal, B, L, D, settings.heads, dev
                )
                if L <= settings.attention_max_len:
                    candidates["attention"] = mixer_step(
                        "attention", causal, B, L, D, settings.heads, dev
                    )
            t = bench.time_interleaved(
                candidates, repeats=settings.repeats, warmup=settings.warmup, device=dev
            )
            rows.append(
                {
                    "mode": mode,
                    "L": L,
                    "N": fft_size(mode, L),
                    "op_s": t["op"],
                    "floor_s": t["floor"],
                    "op_over_floor": t["op"] / t["floor"],
                    "forward_s": t["forward"],
                    "native_s": t.get("native"),
                    "native_forward_s": t.get("native_forward"),
                    "pocketfft_s": t.get("pocket"),
                    "pocketfft_forward_s": t.get("pocket_forward"),
                    "direct_s": t.get("direct"),
                    "plain_s": t.get("plain"),
                    "mixer_s": t.get("mixer"),
                    "attention_s": t.get("attention"),
                    "auto": resolve_backend("auto", L, mode, dev, channels=D),
                }
            )
            _progress(settings, f"table {mode} L={L}")
    return rows


# the columns every row of the operator against the floor starts with
FLOOR_COLUMNS: list[tuple[str, Callable]] = [
    ("mode", lambda r: r["mode"]),
    ("L", lambda r: r["L"]),
    ("N", lambda r: r["N"]),
    ("op ms", lambda r: ms(r["op_s"])),
    ("floor ms", lambda r: ms(r["floor_s"])),
    ("op/floor", lambda r: ratio(r["op_s"], r["floor_s"])),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    _print_rows(
        rows,
        [
            *FLOOR_COLUMNS,
            ("native/floor", lambda r: ratio(r.get("native_s"), r["floor_s"])),
            ("pocket/floor", lambda r: ratio(r["pocketfft_s"], r["floor_s"])),
            ("fwd/floor", lambda r: ratio(r["forward_s"], r["floor_s"])),
            ("native fwd/floor", lambda r: ratio(r.get("native_forward_s"), r["floor_s"])),
            ("pocket fwd/floor", lambda r: ratio(r["pocketfft_forward_s"], r["floor_s"])),
            ("plain/op", lambda r: ratio(r["plain_s"], r["op_s"])),
            ("direct/op", lambda r: ratio(r["direct_s"], r["op_s"])),
            ("mixer ms", lambda r: ms(r["mixer_s"])),
            ("attn ms", lambda r: ms(r["attention_s"])),
            ("attn/mixer", lambda r: ratio(r["attention_s"], r["mixer_s"])),
            ("auto", lambda r: r["auto"]),
        ],
    )
    print(
        "op = backend 'fft' (torch.fft on a (B, D, N) copy), native = backend 'native' (the "
        "compiled kernel along the (B, L, D) layout), pocket = backend 'pocketfft' (scipy.fft "
        "along the strided axis), forward+backward; fwd = forward only, no_grad; floor = one "
        "bare rfft+irfft pair of (B, D, N); mixer = the global_conv mixer, backend auto"
    )
    by_len = {r["L"]: r["mixer_s"] for r in rows if r["mode"] == "circular" and r["mixer_s"]}
    for L in sorted(by_len):
        if 4 * L in by_len:
            print(
                f"global_conv mixer, circular: time at L={4 * L} / time at L={L} = "
                f"{by_len[4 * L] / by_len[L]:.2f} (L log L predicts "
                f"{4 * (1 + 2 / max(1, L.bit_length() - 1)):.2f}, L^2 predicts 16)"
            )


# aten operators by what they do inside the FFT path ("cat": the full mode's kernel rotation)
SHARES = {
    "transforms": ("aten::_fft_r2c", "aten::_fft_c2r"),
    "layout": ("aten::copy_", "aten::zero_", "aten::fill_", "aten::cat"),
    "products": ("aten::mul", "aten::mul_", "aten::addcmul_", "aten::conj_physical",
                 "aten::conj_physical_", "aten::sum", "aten::add_"),
}  # fmt: skip


def part_breakdown(settings: Settings) -> list[dict[str, Any]]:
    from globalconv.ops import fft_size

    B, D, dev = settings.batch, settings.dim, settings.device
    rows = []
    for mode in settings.modes:
        for L in settings.sizes:
            op = op_step(mode, "fft", B, L, D, dev)
            candidates = {"op": op, "floor": floor_step(mode, B, L, D, dev)}
            t = bench.time_interleaved(
                candidates, repeats=settings.repeats, warmup=settings.warmup, device=dev
            )
            row = {"mode": mode, "L": L, "N": fft_size(mode, L), "op_s": t["op"]}
            row["floor_s"] = t["floor"]
            row |= {f"{k}_share": v for k, v in _shares(op, settings.repeats, dev).items()}
            rows.append(row)
            _progress(settings, f"breakdown {mode} L={L}")
    return rows


def _shares(step: Callable[[], None], rounds: int, device: str) -> dict[str, float]:
    """Fractions of the operator's own time (torch.profiler, self time per aten operator) spent
    in each group of ``SHARES``, and in everything else."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(rounds):
            step()
        if cuda:
            torch.cuda.synchronize()
    spent = {
        e.key: e.self_device_time_total if cuda else e.self_cpu_time_total
        for e in prof.key_averages()
    }
    total = sum(spent.values()) or 1.0
    shares = {g: sum(spent.get(k, 0.0) for k in keys) / total for g, keys in SHARES.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def print_breakdown(rows: list[dict[str, Any]]) -> None:
    def part(group: str):
        return lambda r: f"{r[f'{group}_share'] * r['op_s'] / r['floor_s']:.2f}"

    _print_rows(
        rows,
        [*FLOOR_COLUMNS, *[(f"{group}/floor", part(group)) for group in (*SHARES, "other")]],
    )
    print(
        "the operator's time split by torch.profiler (self time per aten operator), in units of "
        "the floor: transforms = rfft/irfft; layout = the copies between (B, L, D) and the "
        "(B, D, N) transform layout, and zero padding; products = spectral products, "
        "conjugates, the kernel gradient's batch sum; other = the rest, the autograd "
        "function's own Python time included"
    )


def part_crossover(settings: Settings) -> list[dict[str, Any]]:
    from globalconv.ops import native, resolve_backend

    B, D, dev = settings.batch, settings.dim, settings.device
    with_native = torch.device(dev).type == "cpu" and native.available()
    rows = []
    for mode in settings.modes:
        direct_alive, losing = True, 0
        for L in settings.crossover_lengths:
            candidates = {
                "fft": op_step(mode, "fft", B, L, D, dev),
                "auto": op_step(mode, "auto", B, L, D, dev),
            }
            if with_native:
                candidates["native"] = op_step(mode, "native", B, L, D, dev)
            if direct_alive:
                candidates["direct"] = op_step(mode, "direct", B, L, D, dev)
            t = bench.time_interleaved(
                candidates, repeats=settings.repeats, warmup=settings.warmup, device=dev
            )
            best = min(t["fft"], t.get("direct", float("inf")), t.get("native", float("inf")))
            rows.append(
                {
                    "mode": mode,
                    "L": L,
                    "direct_s": t.get("direct"),
                    "plain_s": t.get("plain"),
                    "fft_s": t["fft"],
                    "native_s": t.get("native"),
                    "auto": resolve_backend("auto", L, mode, dev, channels=D),
                    "auto_s": t["auto"],
                    "auto_over_best": t["auto"] / best,
                }
            )
            # the direct path only loses more as L grows (L^2 vs L log L): stop timing it once
            # it is 4x slower twice in a row
            losing = losing + 1 if "direct" in t and t["direct"] > 4 * t["fft"] else 0
            direct_alive = direct_alive and losing < 2
            _progress(settings, f"crossover {mode} L={L}")
    return rows


def print_crossover(rows: list[dict[str, Any]]) -> None:
    _print_rows(
        rows,
        [
            ("mode", lambda r: r["mode"]),
            ("L", lambda r: r["L"]),
            ("direct ms", lambda r: ms(r["direct_s"])),
            ("fft ms", lambda r: ms(r["fft_s"])),
            ("direct/fft", lambda r: ratio(r["direct_s"], r["fft_s"])),
            ("native ms", lambda r: ms(r.get("native_s"))),
            ("fft/native", lambda r: ratio(r["fft_s"], r.get("native_s"))),
            ("auto", lambda r: r["auto"]),
            ("auto ms", lambda r: ms(r["auto_s"])),
            ("auto/best", lambda r: f"{r['auto_over_best']:.2f}"),
        ],
    )
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]
        faster = [r["L"] for r in mine if r["direct_s"] is not None and r["direct_s"] < r["fft_s"]]
        worst = max(r["auto_over_best"] for r in mine)
        print(
            f"{mode}: direct faster at L = {faster or 'none'}; "
            f"auto is at most {worst:.2f}x the faster path"
        )


def part_memory(settings: Settings) -> list[dict[str, Any]]:
    from globalconv.ops import native

    B, D, dev = settings.batch, settings.dim, settings.device
    with_native = torch.device(dev).type == "cpu" and native.available()
    rows = []
    for mode in settings.modes:
        for L in settings.sizes:
            input_bytes = B * L * D * 4
            step = op_step(mode, "fft", B, L, D, dev)
            saved = _saved_bytes(step)
            row = {
                "mode": mode,
                "L": L,
                "input_bytes": input_bytes,
                "saved_over_input": saved / input_bytes,
                "peak_over_input": bench.peak_bytes(step) / input_bytes,
                "direct_peak_over_input": None,
                "native_saved_over_input": None,
                "native_peak_over_input": None,
            }
            if with_native:  # tensors only: its strip buffers (512 B per point per thread) are not
                native_step = op_step(mode, "native", B, L, D, dev)
                row["native_saved_over_input"] = _saved_bytes(native_step) / input_bytes
                row["native_peak_over_input"] = bench.peak_bytes(native_step) / input_bytes
            if L <= settings.direct_max_len:
                direct = op_step(mode, "direct", B, L, D, dev)
                row["direct_peak_over_input"] = bench.peak_bytes(direct) / input_bytes
            rows.append(row)
            _progress(settings, f"memory {mode} L={L}")
    return rows


def print_memory(rows: list[dict[str, Any]]) -> None:
    _print_rows(
        rows,
        [
            ("mode", lambda r: r["mode"]),
            ("L", lambda r: r["L"]),
            ("input MiB", lambda r: f"{r['input_bytes'] / 2**20:.1f}"),
            ("saved/input", lambda r: f"{r['saved_over_input']:.2f}"),
            ("peak/input", lambda r: f"{r['peak_over_input']:.2f}"),
            ("native saved/input", lambda r: ratio(r.get("native_saved_over_input"), 1)),
            ("native peak/input", lambda r: ratio(r.get("native_peak_over_input"), 1)),
            ("direct peak/input", lambda r: ratio(r["direct_peak_over_input"], 1)),
        ],
    )


def part_model(settings: Settings) -> list[dict[str, Any]]:
    B, L, D, dev = settings.model_batch, settings.model_len, settings.dim, settings.device
    steps, params = {}, {}
    for name in ("global_conv", "attention"):
        steps[name], params[name] = model_step(
            name, B, L, D, settings.model_layers, settings.heads, dev
        )
    t = bench.time_interleaved(
        steps, repeats=settings.model_steps, warmup=min(settings.warmup, 1), device=dev
    )
    _progress(settings, f"model L={L}")
    return [
        {
            "mixer": name,
            "L": L,
            "batch": B,
            "layers": settings.model_layers,
            "d_model": D,
            "params": params[name],
            "step_s": t[name],
            "tokens_per_s": B * L / t[name],
        }
        for name in steps
    ]


def print_model(rows: list[dict[str, Any]]) -> None:
    _print_rows(
        rows,
        [
            ("mixer", lambda r: r["mixer"]),
            ("layers", lambda r: r["layers"]),
            ("d_model", lambda r: r["d_model"]),
            ("L", lambda r: r["L"]),
            ("batch", lambda r: r["batch"]),
            ("params", lambda r: f"{r['params']:,}"),
            ("step ms", lambda r: ms(r["step_s"])),
            ("tokens/s", lambda r: f"{r['tokens_per_s']:,.0f}"),
        ],
    )
    speed = {r["mixer"]: r["tokens_per_s"] for r in rows}
    print(f"global_conv trains {speed['global_conv'] / speed['attention']:.2f}x the tokens/s")


def _print_rows(rows: list[dict[str, Any]], columns: list[tuple[str, Callable]]) -> None:
    print(format_table([h for h, _ in columns], [[f(r) for _, f in columns] for r in rows]))


def _saved_bytes(step: Callable[[], None]) -> int:
    """Bytes autograd keeps between forward and backward (distinct storages)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def _progress(settings: Settings, what: str) -> None:
    if not settings.quiet:
        print(f"  measured {what}", flush=True)


def run(settings: Settings) -> dict[str, Any]:
    """Measure and print every part asked for, in the order of PARTS; returns the rows of each
    part under its name, with the device, sizes and rounds."""
    device = torch.device(settings.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )  # fmt: skip
    print(
        f"globalconv bench op: torch {torch.__version__} on {device.type} ({where}); "
        f"B={settings.batch} D={settings.dim}; median of {settings.repeats} interleaved rounds "
        f"after {settings.warmup} warm-up; forward+backward unless said otherwise"
    )
    results: dict[str, Any] = {"device": str(device), "where": where, "batch": settings.batch,
                               "dim": settings.dim, "repeats": settings.repeats}  # fmt: skip
    parts = {
        "table": (part_table, print_table, "both FFT paths vs the FFT floor, direct, attention"),
        "breakdown": (part_breakdown, print_breakdown, "where the operator's time goes"),
        "crossover": (part_crossover, print_crossover, "direct vs FFT vs auto"),
        "memory": (part_memory, print_memory, "memory of forward+backward (FFT path)"),
        "model": (part_model, print_model, "model-level training throughput"),
    }
    for name in PARTS:
        if name in settings.parts:
            measure, show, title = parts[name]
            rows = measure(settings)
            print(f"\n== {title}")
            show(rows)
            results[name] = rows
    return results


__all__ = ["PARTS", "Settings", "run"]
