"""The measurements of ``globalconv bench mixers``: speed and memory of every mixer (or of a
Transformer of it) versus length, timed in interleaved rounds (``analysis.bench``), with the
log-log slope of time over length, tables and a plot. How a mixer leaves the race and what the
records hold: ``globalconv bench mixers --help``.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from globalconv import mixers
from globalconv.analysis import bench
from globalconv.core import io
from globalconv.core.tables import format_table

PASSES = ("forward", "forward+backward")


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x): the exponent of y ~ x^k."""
    if len(points) < 2:
        return None
    xs = [math.log(x) for x, _ in points]
    ys = [math.log(y) for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else None


def _module(name: str, level: str, L: int, D: int, layers: int, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if level == "mixer":
        return mixers.build(name, d_model=D, max_len=L).to(device)
    from globalconv.config import ModelConfig
    from globalconv.models import Transformer

    cfg = ModelConfig(mixer=name, d_model=D, n_layers=layers, dropout=0.0)
    return Transformer(cfg, max_len=L, num_outputs=10, input_dim=D).to(device)


def _params_at(name: str, level: str, L: int, D: int, layers: int) -> int:
    with torch.device("meta"):  # shapes only: nothing allocated
        return sum(p.numel() for p in _module(name, level, L, D, layers, "meta").parameters())


def _steps(module: torch.nn.Module, x: torch.Tensor) -> dict[str, Any]:
    def forward() -> None:
        with torch.no_grad():
            module(x)

    def forward_backward() -> None:
        module.zero_grad(set_to_none=True)
        x.grad = None
        module(x).float().square().mean().backward()

    return {"forward": forward, "forward+backward": forward_backward}


def measure(
    names: list[str],
    sizes: list[int],
    *,
    level: str,
    passes: list[str],
    batch: int,
    dim: int,
    layers: int,
    repeats: int,
    warmup: int,
    max_seconds: float,
    max_params: int,
    memory: bool,
    device: str,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Records of every mixer (``level`` "mixer") or Transformer of those mixers ("model") at
    each length, until each leaves the race (past ``max_seconds`` per call or ``max_params``
    parameters): median, min and max milliseconds of each of ``passes`` (of PASSES), peak MB
    when ``memory``, and a record saying why a mixer stopped."""
    alive = list(names)
    records: list[dict[str, Any]] = []
    for L in sizes:
        candidates, params, stopped = {}, {}, []
        for name in alive:
            n_params = _params_at(name, level, L, dim, layers)
            if n_params > max_params:
                stopped.append((name, f"{n_params:,} parameters at L={L} > --max-params"))
                continue
            module = _module(name, level, L, dim, layers, device)
            g = torch.Generator(device=device).manual_seed(1)
            x = torch.randn(batch, L, dim, device=device, generator=g)
            x.requires_grad_(True)
            for kind, fn in _steps(module, x).items():
                if kind in passes:
                    candidates[(name, kind)] = fn
            params[name] = n_params
        rounds = bench.time_rounds(candidates, repeats=repeats, warmup=warmup, device=device)
        for (name, kind), times in rounds.items():
            record = {
                "name": name,
                "pass": kind,
                "L": L,
                "level": level,
                "params": params[name],
                "median_ms": 1e3 * statistics.median(times),
                "min_ms": 1e3 * min(times),
                "max_ms": 1e3 * max(times),
                "peak_mb": None,
            }
            if memory:
                record["peak_mb"] = bench.peak_bytes(candidates[(name, kind)]) / 2**20
            records.append(record)
        for name in {n for n, _ in rounds}:
            slowest = max(r["median_ms"] for r in records if r["name"] == name and r["L"] == L)
            if slowest / 1e3 > max_seconds:
                stopped.append((name, f"{slowest / 1e3:.1f} s per call at L={L} > --max-seconds"))
        for name, why in stopped:
            if name in alive:
                alive.remove(name)
                records.append({"name": name, "L": L, "stopped": why})
        if progress:
            print(f"  measured L={L}", flush=True)
        if not alive:
            break
    return records


def print_tables(records: list[dict[str, Any]], reference: str = "attention") -> None:
    timed = [r for r in records if "median_ms" in r]
    for kind in dict.fromkeys(r["pass"] for r in timed):
        rows = []
        ref = {
            r["L"]: r["median_ms"] for r in timed if r["pass"] == kind and r["name"] == reference
        }
        for r in (r for r in timed if r["pass"] == kind):
            rows.append(
                [
                    r["name"],
                    r["L"],
                    f"{r['median_ms']:.2f}",
                    f"{r['min_ms']:.2f}..{r['max_ms']:.2f}",
                    None if r["peak_mb"] is None else f"{r['peak_mb']:.1f}",
                    bench.ratio(ref.get(r["L"]), r["median_ms"]),
                ]
            )
        print(f"\n{kind} (median of interleaved rounds)")
        header = ["mixer", "L", "ms", "spread ms", "peak MB", f"{reference} / this"]
        print(format_table(header, rows))
    slopes = []
    for name, kind in dict.fromkeys((r["name"], r["pass"]) for r in timed):
        points = [(r["L"], r["median_ms"]) for r in timed if (r["name"], r["pass"]) == (name, kind)]
        tail = [p for p in points if p[0] >= max(x for x, _ in points) / 4]  # the last 4x
        slope = fit_slope(tail)
        slopes.append([name, kind, None if slope is None else f"{slope:.2f}"])
    print("\nlog-log slope of time over the longest 4x of lengths (1: linear, 2: quadratic)")
    print(format_table(["mixer", "pass", "slope"], slopes))
    for r in records:
        if "stopped" in r:
            print(f"stopped: {r['name']}: {r['stopped']}")


def plot(records: list[dict[str, Any]], path: str, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in records if "median_ms" in r]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, kind in dict.fromkeys((r["name"], r["pass"]) for r in timed):
        points = sorted(
            (r["L"], r["median_ms"]) for r in timed if (r["name"], r["pass"]) == (name, kind)
        )
        slope = fit_slope(points[-3:])
        label = f"{name} {kind}" + ("" if slope is None else f" (slope {slope:.2f})")
        ax.loglog(
            *zip(*points, strict=True),
            marker="o",
            ms=3,
            ls="-" if "back" in kind else "--",
            label=label,
        )
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("milliseconds (median)")
    ax.set_title(f"time per call on {device}")
    ax.legend(fontsize=6)
    fig.tight_layout()
    import io as bytes_io

    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    io.write_bytes(path, buffer.getvalue())


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    threads = torch.get_num_threads()
    return (
        f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads > 1)})"
    )


__all__ = ["PASSES", "device_name", "fit_slope", "measure", "plot", "print_tables"]
